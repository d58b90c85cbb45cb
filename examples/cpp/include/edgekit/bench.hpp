// `--bench` for the C++ runners: the feed to time (a testdata sample, the manifest's tuned knob values,
// then --feed scalar overrides), a steady_clock timing loop with `edgekit bench`'s budget rule, and one
// JSON document whose `results` row has the fields of an `edgekit bench --json` row plus "api" (the row
// schema lives in edgekit/bench/stats.py, BenchResult). The testdata check runs before any timing.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "edgekit/bundle.hpp"
#include "edgekit/check.hpp"

namespace edgekit {

// edgekit/bench/stats.py: without --iters or --seconds a row runs 200 calls or 20 s, at least 10 calls.
constexpr long kDefaultIters = 200, kDefaultMinIters = 10;
constexpr double kDefaultSeconds = 20.0;

/// How long to time: `iters` calls and/or `seconds` (-1: no such bound), never fewer than `min_iters`.
struct Budget {
    long iters;
    double seconds;
    long min_iters;
};

/// The CLI's rule (BenchSettings.from_options): --iters forces a count, --seconds a time budget.
inline Budget budget_of(const BenchOptions& o) {
    if (o.iters > 0) return {o.iters, -1.0, 1};
    if (o.seconds > 0) return {-1, o.seconds, 1};
    return {kDefaultIters, kDefaultSeconds, kDefaultMinIters};
}

inline const json* input_spec(const Bundle& bundle, const std::string& name) {
    for (const json& spec : bundle.manifest.at("inputs"))
        if (spec.is_object() && spec.value("name", "") == name) return &spec;
    return nullptr;
}

/// Store `text` (a number) in the one-element tensor `t`, cast to its dtype; `where` names the source.
inline void set_scalar(Tensor& t, const json* spec, const std::string& text, const std::string& where) {
    size_t used = 0;
    double v = NAN;
    try {
        v = std::stod(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != text.size() || !std::isfinite(v)) throw Error(where + ": '" + text + "' is not a number");
    if (t.is_integer() && v != std::floor(v)) throw Error(where + ": input '" + t.name + "' is " + t.dtype + ", '" + text + "' is not an integer");
    const json range = spec && spec->contains("range") ? spec->at("range") : json();
    if (range.is_array() && range.size() == 2 && range[0].is_number() && range[1].is_number() &&
        (v < range[0].get<double>() || v > range[1].get<double>()))
        throw Error(where + ": outside the range " + range.dump() + " of input '" + t.name + "'");
    uint8_t* p = t.bytes.data();
    auto store = [p](auto x) { std::memcpy(p, &x, sizeof x); };
    const std::string& d = t.dtype;
    if (d == "float32") store(static_cast<float>(v));
    else if (d == "float64") store(v);
    else if (d == "int64") store(static_cast<int64_t>(v));
    else if (d == "int32") store(static_cast<int32_t>(v));
    else if (d == "int16") store(static_cast<int16_t>(v));
    else if (d == "int8") store(static_cast<int8_t>(v));
    else if (d == "uint8" || d == "bool") store(static_cast<uint8_t>(d == "bool" ? v != 0 : v));
    else throw Error(where + ": input '" + t.name + "' is " + d + ", which --feed cannot set");
}

/// The feed to time: testdata sample `--sample` with the manifest's tuned values (`edgekit tune`), then
/// each --feed NAME=VALUE, applied; `overrides` gets the values applied. Throws Error for a missing
/// sample, an unknown or non-scalar input, or a value that is no number or outside the input's range.
inline std::vector<Tensor> bench_feed(const Bundle& bundle, const BenchOptions& o, json* overrides) {
    const size_t n = bundle.samples.size();
    if (n == 0) throw Error(bundle.dir.string() + ": the bundle has no testdata sample to time");
    if (static_cast<size_t>(o.sample) >= n)
        throw Error("--sample " + std::to_string(o.sample) + ": the bundle has " + std::to_string(n) +
                    " testdata samples (0 to " + std::to_string(n - 1) + ")");
    std::vector<Tensor> feed = bundle.samples[static_cast<size_t>(o.sample)].inputs;
    std::vector<std::pair<std::string, std::string>> values;
    const json tuned = bundle.manifest.value("tuning", json::object());
    if (tuned.is_object() && tuned.contains("chosen") && tuned.at("chosen").is_object())
        for (const auto& [name, value] : tuned.at("chosen").value("setting", json::object()).items())
            values.emplace_back(name, value.dump());
    values.insert(values.end(), o.feeds.begin(), o.feeds.end());
    *overrides = json::object();
    for (const auto& [name, text] : values) {
        const std::string where = "--feed " + name + "=" + text;
        const json* spec = input_spec(bundle, name);
        Tensor* t = nullptr;
        for (Tensor& x : feed) t = x.name == name ? &x : t;
        if (!spec || !t) {
            std::string names;
            for (const std::string& s : bundle.names("inputs")) names += (names.empty() ? "" : ", ") + s;
            throw Error("--feed " + name + ": the model has no input '" + name + "' (inputs: " + names + ")");
        }
        if (t->count() != 1)
            throw Error(where + ": input '" + name + "' has shape " + shape_str(t->shape) + "; --feed sets scalars only");
        set_scalar(*t, spec, text, where);
        (*overrides)[name] = t->is_integer() ? json(t->int_at(0)) : json(t->at(0));
    }
    return feed;
}

/// Per-call milliseconds on the monotonic clock after `warmup` untimed calls, within the budget.
template <class Call>
std::vector<double> time_calls(Call&& call, const BenchOptions& o) {
    using clock = std::chrono::steady_clock;
    const Budget b = budget_of(o);
    for (long i = 0; i < o.warmup; ++i) call();
    std::vector<double> ms;
    const auto deadline = clock::now() + std::chrono::duration<double>(b.seconds > 0 ? b.seconds : 0.0);
    while (b.iters < 0 || static_cast<long>(ms.size()) < b.iters) {
        if (b.seconds > 0 && static_cast<long>(ms.size()) >= std::max(1L, b.min_iters) && clock::now() >= deadline) break;
        const auto start = clock::now();
        call();
        ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - start).count());
    }
    return ms;
}

/// numpy.percentile's default (linear interpolation between closest ranks) of sorted data.
inline double percentile(const std::vector<double>& sorted, double q) {
    const double at = q / 100.0 * static_cast<double>(sorted.size() - 1);
    const size_t lo = static_cast<size_t>(std::floor(at)), hi = static_cast<size_t>(std::ceil(at));
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - static_cast<double>(lo));
}

/// min p50 p90 p99 mean max stdev (population), as edgekit/bench/stats.py latency_stats.
inline json latency_stats(std::vector<double> ms) {
    std::sort(ms.begin(), ms.end());
    double sum = 0, sq = 0;
    for (double v : ms) sum += v;
    const double mean = sum / static_cast<double>(ms.size());
    for (double v : ms) sq += (v - mean) * (v - mean);
    return {{"min", ms.front()}, {"p50", percentile(ms, 50)}, {"p90", percentile(ms, 90)}, {"p99", percentile(ms, 99)},
            {"mean", mean}, {"max", ms.back()}, {"stdev", ms.size() > 1 ? std::sqrt(sq / static_cast<double>(ms.size())) : 0.0}};
}

/// A line "KEY: N kB" of /proc/self/status in MB (VmHWM: peak resident memory, VmRSS: current); null elsewhere.
inline json proc_status_mb(const std::string& key) {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind(key + ":", 0) == 0) return std::stod(line.substr(key.size() + 1)) / 1024.0;
    return nullptr;
}

/// What a runner measured; `row()` is one `edgekit bench --json` row.
struct BenchRun {
    std::string runtime, api, device, artifact, precision = "fp32", runner;
    double load_ms = 0.0;
    json size_mb = nullptr, rss_before_load_mb = nullptr;
    std::vector<double> ms;

    json row() const {
        json r = {{"runtime", runtime}, {"status", "ok"}, {"precision", precision}, {"reason", nullptr},
                  {"iters", ms.size()}, {"load_ms", load_ms}, {"latency_ms", latency_stats(ms)}};
        r["throughput"] = 1000.0 / r["latency_ms"]["mean"].get<double>();
        r.update({{"vs_torch", nullptr}, {"mode", "latency"}, {"batch", 1}, {"requests", 1}, {"size_mb", size_mb},
                  {"import_ms", nullptr}, {"peak_rss_mb", proc_status_mb("VmHWM")},
                  {"rss_before_load_mb", rss_before_load_mb}, {"pid", static_cast<long>(getpid())},
                  {"clock", "steady_clock"}, {"validation", nullptr}, {"runner", runner}, {"api", api},
                  {"device", device}, {"artifact", artifact}});
        return r;
    }
};

/// Size (MB) and precision of the manifest's artifact entry for `file`, into `run`.
inline void describe_artifact(const Bundle& bundle, const std::string& file, BenchRun& run) {
    run.artifact = file;
    const auto artifacts = bundle.manifest.find("artifacts");
    if (artifacts == bundle.manifest.end() || !artifacts->is_object()) return;
    for (const auto& [key, value] : artifacts->items())
        for (const json& e : value.is_array() ? value : json::array({value}))
            if (e.is_object() && e.value("path", "") == file) {
                if (e.contains("size_bytes") && e.at("size_bytes").is_number()) run.size_mb = e.at("size_bytes").get<double>() / 1e6;
                if (e.contains("precision") && e.at("precision").is_string()) run.precision = e.at("precision");
            }
}

/// The whole `--bench` document: bundle, feed, settings, the testdata check and the row.
inline json bench_document(const Bundle& bundle, const Options& o, const std::vector<Tensor>& feed,
                           const json& overrides, const Report& check, const BenchRun& run, const std::string& version) {
    const Budget b = budget_of(o.bench);
    json inputs = json::object();
    for (const Tensor& t : feed) inputs[t.name] = {{"shape", t.shape}, {"dtype", t.dtype}};
    const json source = bundle.manifest.value("source", json::object());
    return {{"bundle", o.bundle}, {"source", source.is_object() ? source.value("spec", json()) : json()},
            {"feed", overrides}, {"sample", o.bench.sample}, {"inputs", inputs},
            {"settings", {{"warmup", o.bench.warmup}, {"iters", b.iters > 0 ? json(b.iters) : json()},
                          {"seconds", b.seconds > 0 ? json(b.seconds) : json()},
                          {"threads", o.bench.threads > 0 ? json(o.bench.threads) : json()}, {"batch", 1},
                          {"device", o.device}, {"min_iters", b.min_iters}, {"verified", o.verify}}},
            {"pid", static_cast<long>(getpid())}, {"api", run.api}, {"runtime_version", version},
            {"check", check.to_json()}, {"results", json::array({run.row()})}};
}

}  // namespace edgekit
