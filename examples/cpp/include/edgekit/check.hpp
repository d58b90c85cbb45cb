// Compare a runtime's outputs with a bundle's reference outputs and report the result as ONE JSON line
// on stdout (same fields as the manifest's validation block). Shared by the OpenVINO and TensorRT runners.
#pragma once

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "edgekit/bundle.hpp"

namespace edgekit {

/// |got - ref| <= atol + rtol * |ref| for float outputs; integer outputs must match exactly.
struct Tolerance {
    double atol = 1e-4, rtol = 1e-3;
};

/// `--bench` and its settings (bench.hpp times them). -1: not given on the command line.
struct BenchOptions {
    bool enabled = false;
    long warmup = 10, iters = -1, threads = -1, sample = 0;
    double seconds = -1;
    std::vector<std::pair<std::string, std::string>> feeds;  // --feed NAME=VALUE, scalar inputs only
};

struct Options {
    std::string bundle, device = "CPU", model;
    Tolerance tol;
    bool verify = true;  // check the model file against the manifest's sha256/size_bytes (--no-verify: off)
    BenchOptions bench;
};

inline Options parse_options(int argc, char** argv, const std::string& usage) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw Error(arg + " needs a value\n" + usage);
            return argv[++i];
        };
        auto number = [&]() {
            const std::string text = value();
            size_t used = 0;
            try {
                const double d = std::stod(text, &used);
                if (used == text.size()) return d;
            } catch (const std::exception&) {
            }
            throw Error(arg + ": not a number: " + text);
        };
        auto integer = [&](long low) {  // a whole number >= low (a count, an index)
            const std::string text = value();
            size_t used = 0;
            long n = 0;
            try {
                n = std::stol(text, &used);
            } catch (const std::exception&) {
                used = 0;
            }
            if (used == 0 || used != text.size() || n < low)
                throw Error(arg + ": expected an integer >= " + std::to_string(low) + ", got '" + text + "'");
            return n;
        };
        if (arg == "-h" || arg == "--help") { std::cerr << usage << "\n"; std::exit(0); }
        else if (arg == "--device") o.device = value();
        else if (arg == "--model") o.model = value();
        else if (arg == "--no-verify") o.verify = false;
        else if (arg == "--atol") o.tol.atol = number();
        else if (arg == "--rtol") o.tol.rtol = number();
        else if (arg == "--bench") o.bench.enabled = true;
        else if (arg == "--warmup") o.bench.warmup = integer(0);
        else if (arg == "--iters") o.bench.iters = integer(1);
        else if (arg == "--threads") o.bench.threads = integer(1);
        else if (arg == "--sample") o.bench.sample = integer(0);
        else if (arg == "--seconds") {
            o.bench.seconds = number();
            if (!(o.bench.seconds > 0)) throw Error("--seconds: expected a positive number of seconds");
        } else if (arg == "--feed") {
            const std::string feed = value();
            const size_t eq = feed.find('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == feed.size())
                throw Error("--feed " + feed + ": expected NAME=VALUE (a scalar input and its value)");
            o.bench.feeds.emplace_back(feed.substr(0, eq), feed.substr(eq + 1));
        }
        else if (!arg.empty() && arg[0] == '-') throw Error("unknown option " + arg + "\n" + usage);
        else if (o.bundle.empty()) o.bundle = arg;
        else throw Error("one bundle only\n" + usage);
    }
    if (o.bundle.empty()) throw Error(usage);
    return o;
}

struct Report {
    std::string bundle, runtime, api, device, model;
    bool verified = false;  // the model file was checked against the manifest
    Tolerance tol;
    size_t samples = 0, mismatches = 0;
    double max_abs_err = 0.0;
    std::vector<std::string> failures;
    std::vector<std::pair<std::string, std::set<int64_t>>> paths;  // first-seen order, like validate

    /// Integer scalars are the control-flow markers: exit_index outputs, num_steps inputs.
    void record_paths(const std::vector<Tensor>& tensors) {
        for (const auto& t : tensors) {
            if (!t.is_scalar() || !t.is_integer() || t.bytes.empty()) continue;
            auto it = paths.begin();
            while (it != paths.end() && it->first != t.name) ++it;
            if (it == paths.end()) it = paths.insert(paths.end(), {t.name, {}});
            it->second.insert(t.int_at(0));
        }
    }

    void fail(const std::string& message) {
        ++mismatches;
        failures.push_back(message);
        std::cerr << "mismatch: " << message << "\n";
    }

    void compare(size_t sample, const Tensor& ref, const Tensor* got) {
        const std::string where = "sample " + std::to_string(sample) + " output '" + ref.name + "'";
        if (!got) return fail(where + ": missing from the runtime's outputs");
        if (got->shape != ref.shape)
            return fail(where + ": shape " + shape_str(got->shape) + " != reference " + shape_str(ref.shape));
        size_t bad = 0, worst = 0;
        double worst_err = -1.0;
        for (size_t i = 0; i < ref.count(); ++i) {
            const double r = ref.at(i), g = got->at(i);
            double err;
            bool ok;
            if (ref.is_integer()) {
                ok = got->is_integer() ? got->int_at(i) == ref.int_at(i) : g == r;
                err = std::fabs(g - r);
            } else if (std::isnan(r) && std::isnan(g)) {
                ok = true, err = 0.0;
            } else {
                err = std::fabs(g - r);
                ok = err <= tol.atol + tol.rtol * std::fabs(r);  // false for NaN
                if (std::isnan(err)) err = std::numeric_limits<double>::infinity();
            }
            if (err > max_abs_err) max_abs_err = err;
            if (!ok) ++bad;
            if (!ok && err > worst_err) worst_err = err, worst = i;
        }
        if (bad == 0) return;
        std::ostringstream msg;
        msg.precision(9);
        if (ref.is_integer() && ref.is_scalar())
            msg << where << ": got " << got->int_at(0) << ", expected " << ref.int_at(0);
        else
            msg << where << ": " << bad << "/" << ref.count() << " elements out of tolerance (max abs err "
                << worst_err << " at flat index " << worst << ": got " << got->at(worst) << ", reference "
                << ref.at(worst) << ")";
        fail(msg.str());
    }

    bool passed() const { return samples > 0 && mismatches == 0; }

    json to_json() const {
        json out = {{"bundle", bundle}, {"runtime", runtime}, {"api", api}, {"device", device}, {"model", model},
                    {"verified", verified}, {"samples", samples}};
        out["max_abs_err"] = std::isfinite(max_abs_err) ? json(max_abs_err) : json(nullptr);
        out["mismatches"] = mismatches;
        out["atol"] = tol.atol;
        out["rtol"] = tol.rtol;
        out["paths"] = json::object();
        for (const auto& [name, values] : paths) out["paths"][name] = std::vector<int64_t>(values.begin(), values.end());
        out["status"] = passed() ? "passed" : "failed";
        if (!failures.empty())
            out["failures"] = std::vector<std::string>(failures.begin(), failures.begin() + std::min<size_t>(failures.size(), 20));
        return out;
    }
};

/// Run every reference sample through `run(inputs) -> outputs` and compare each output.
template <class Run>
void check_samples(const Bundle& bundle, Report& report, Run&& run) {
    for (size_t i = 0; i < bundle.samples.size(); ++i) {
        const Sample& sample = bundle.samples[i];
        const std::vector<Tensor> got = run(sample.inputs);
        report.record_paths(sample.inputs);
        report.record_paths(got);
        for (const Tensor& ref : sample.outputs) {
            const Tensor* match = nullptr;
            for (const Tensor& t : got)
                if (t.name == ref.name) match = &t;
            report.compare(i, ref, match);
        }
        ++report.samples;
    }
}

/// For a load or usage error: one JSON line with status "error", the message on stderr, exit code 2.
inline int report_error(const std::string& bundle, const std::string& message) {
    std::cerr << "error: " << message << "\n";
    std::cout << json{{"bundle", bundle}, {"status", "error"}, {"error", message}}.dump() << std::endl;
    return 2;
}

}  // namespace edgekit
