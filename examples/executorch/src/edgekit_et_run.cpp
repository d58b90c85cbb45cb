// edgekit_et_run: load an edgekit bundle's ExecuTorch program (model.pte) with ExecuTorch's C++ Module API,
// feed every reference sample in testdata/ to its method (manifest `inputs` in order; outputs are the
// manifest's `outputs` in order), compare each output with the stored reference and print one JSON line, as
// the OpenVINO runner does (examples/cpp, whose header-only bundle reader this reuses). With --bench, then
// time one sample and print one `edgekit bench`-style JSON document instead (bench.hpp).
// Exit status: 0 all outputs within tolerance, 1 a mismatch (no timing then), 2 a usage or load error.
#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>

#include "edgekit/bench.hpp"
#include "edgekit/bundle.hpp"
#include "edgekit/check.hpp"
#include "edgekit/integrity.hpp"

#ifndef EDGEKIT_EXECUTORCH_VERSION
#define EDGEKIT_EXECUTORCH_VERSION "unknown"
#endif

#ifdef EDGEKIT_ET_THREADPOOL
// The wheel ships libexecutorch_threadpool.so but not threadpool.h (it includes pthreadpool.h, which the
// wheel does not ship): the two exported functions --threads needs, declared as that header declares them.
namespace executorch::extension::threadpool {
class ThreadPool final {
public:
    size_t get_thread_count() const;
    bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool
#endif

namespace {

using edgekit::Tensor;
using edgekit::json;
using executorch::aten::ScalarType;
using executorch::extension::Module;
using executorch::runtime::EValue;
using executorch::runtime::Tag;

const char* kUsage =
    "usage: edgekit_et_run BUNDLE [--model FILE] [--atol 1e-4] [--rtol 1e-3] [--no-verify]\n"
    "                     [--bench [--warmup 10] [--iters N | --seconds S] [--threads N] [--sample K] [--feed NAME=VALUE]...]\n"
    "  runs BUNDLE's ExecuTorch program (artifacts.executorch, or --model: a .pte file in the bundle) on the CPU\n"
    "  on its testdata, after checking it against the manifest's sha256 and size_bytes (--no-verify skips that\n"
    "  check); --bench then times testdata sample K (default 0) and prints edgekit bench's JSON";

const std::map<std::string, ScalarType>& scalar_types() {
    static const std::map<std::string, ScalarType> types = {
        {"float32", ScalarType::Float}, {"float16", ScalarType::Half},   {"float64", ScalarType::Double},
        {"int64", ScalarType::Long},    {"int32", ScalarType::Int},      {"int16", ScalarType::Short},
        {"int8", ScalarType::Char},     {"uint8", ScalarType::Byte},     {"uint16", ScalarType::UInt16},
        {"uint32", ScalarType::UInt32}, {"uint64", ScalarType::UInt64},  {"bool", ScalarType::Bool}};
    return types;
}

ScalarType scalar_type_of(const std::string& dtype) {
    auto it = scalar_types().find(dtype);
    if (it == scalar_types().end()) throw edgekit::Error("no ExecuTorch scalar type for dtype " + dtype);
    return it->second;
}

/// The dtype name of `type`, "" for a type a bundle cannot hold.
std::string name_of(ScalarType type) {
    for (const auto& [name, t] : scalar_types())
        if (t == type) return name;
    return "";
}

std::string dtype_of(ScalarType type) {
    const std::string name = name_of(type);
    if (name.empty()) throw edgekit::Error("unsupported ExecuTorch output scalar type " + std::to_string(static_cast<int>(type)));
    return name;
}

/// ExecuTorch's last error-level log message: it names what `Error::NotFound` alone does not (a backend that
/// is not registered, a missing operator), so it goes into the one error line instead of onto stderr.
std::string& last_log_error() {
    static std::string message;
    return message;
}

void keep_log_errors(et_timestamp_t, et_pal_log_level_t level, const char*, const char*, size_t, const char* message,
                     size_t length) {
    std::string text(message, length);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    for (char& c : text)  // a corrupt .pte puts its bytes in the message, and the JSON line needs UTF-8
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
    if (level == kError) last_log_error() = text;
    if (level == kFatal) std::cerr << "executorch: fatal: " << text << "\n";  // et_pal_abort follows
}

void check(executorch::runtime::Error error, const std::string& what) {
    if (error == executorch::runtime::Error::Ok) return;
    const std::string& log = last_log_error();
    throw edgekit::Error(what + ": " + executorch::runtime::to_string(error) + (log.empty() ? "" : " (" + log + ")"));
}

/// A copy of `t` in C order whatever its dim order (a delegate may hand back channels-last memory).
Tensor copy_out(const std::string& name, const executorch::aten::Tensor& t) {
    Tensor out;
    out.name = name;
    out.dtype = dtype_of(t.scalar_type());
    for (auto d : t.sizes()) out.shape.push_back(d);
    const size_t item = t.element_size(), count = static_cast<size_t>(t.numel());
    const auto* src = static_cast<const uint8_t*>(t.const_data_ptr());
    out.bytes.resize(count * item);
    std::vector<int64_t> index(out.shape.size(), 0);
    for (size_t flat = 0; flat < count; ++flat) {  // strides are in elements
        int64_t offset = 0;
        for (size_t d = 0; d < index.size(); ++d) offset += index[d] * t.strides()[d];
        std::memcpy(out.bytes.data() + flat * item, src + offset * static_cast<int64_t>(item), item);
        for (size_t d = index.size(); d-- > 0;) {
            if (++index[d] < out.shape[d]) break;
            index[d] = 0;
        }
    }
    return out;
}

/// The bundle's program with its method loaded; run() takes inputs in manifest order and copies the outputs
/// out of ExecuTorch's planned memory (the next execute overwrites it).
class ExecuTorchRunner {
public:
    ExecuTorchRunner(const std::string& path, std::string method, std::vector<std::string> input_names,
                     std::vector<std::string> output_names)
        : module_(path, Module::LoadMode::Mmap), method_(std::move(method)),
          input_names_(std::move(input_names)), output_names_(std::move(output_names)) {
        // The file is untrusted (a bundle from elsewhere; --no-verify): check the flatbuffer before using it.
        check(module_.load(executorch::runtime::Program::Verification::InternalConsistency), path + ": cannot load the program");
        check(module_.load_method(method_), path + ": cannot load method '" + method_ + "'");
        auto meta = module_.method_meta(method_);
        check(meta.error(), path + ": no metadata for method '" + method_ + "'");
        const auto& m = meta.get();
        if (m.num_inputs() != input_names_.size() || m.num_outputs() != output_names_.size())
            throw edgekit::Error(path + ": method '" + method_ + "' takes " + std::to_string(m.num_inputs()) +
                                 " inputs and returns " + std::to_string(m.num_outputs()) + " outputs; the manifest lists " +
                                 std::to_string(input_names_.size()) + " and " + std::to_string(output_names_.size()));
        for (size_t i = 0; i < m.num_inputs(); ++i) {
            auto tag = m.input_tag(i);
            check(tag.error(), "method '" + method_ + "' input " + std::to_string(i));
            input_tags_.push_back(tag.get());
            input_types_.push_back(ScalarType::Undefined);
            std::string shown = "a number";
            if (tag.get() == Tag::Tensor) {
                auto info = m.input_tensor_meta(i);
                check(info.error(), "method '" + method_ + "' input " + std::to_string(i));
                input_types_.back() = info->scalar_type();
                const std::string name = name_of(info->scalar_type());
                shown = (name.empty() ? "scalar type " + std::to_string(static_cast<int>(info->scalar_type())) : name) +
                        edgekit::shape_str({info->sizes().begin(), info->sizes().end()});
            }
            program_inputs_.push_back(shown);
        }
    }

    std::vector<Tensor> run(const std::vector<Tensor>& inputs) {
        std::vector<executorch::extension::TensorPtr> hold;  // keeps the wrappers alive through execute
        std::vector<EValue> values;
        for (size_t i = 0; i < input_names_.size(); ++i) {
            const Tensor* in = nullptr;
            for (const Tensor& t : inputs) in = t.name == input_names_[i] ? &t : in;
            if (!in) throw edgekit::Error("input '" + input_names_[i] + "' is missing from the feed");
            values.push_back(to_evalue(*in, i, hold));
        }
        auto result = module_.execute(method_, values);
        if (!result.ok()) {
            std::string expected;  // the shapes are upper bounds where the program has dynamic dims
            for (size_t i = 0; i < input_names_.size(); ++i)
                expected += (i ? ", " : "") + input_names_[i] + " " + program_inputs_[i];
            check(result.error(), "method '" + method_ + "' failed (the program takes " + expected + ")");
        }
        std::vector<Tensor> outputs;
        for (size_t i = 0; i < output_names_.size(); ++i) {
            const EValue& v = result.get()[i];
            if (v.isTensor()) outputs.push_back(copy_out(output_names_[i], v.toTensor()));
            else if (v.isInt()) outputs.push_back(scalar(output_names_[i], "int64", v.toInt()));
            else if (v.isDouble()) outputs.push_back(scalar(output_names_[i], "float64", v.toDouble()));
            else if (v.isBool()) outputs.push_back(scalar(output_names_[i], "bool", v.toBool()));
            else throw edgekit::Error("output '" + output_names_[i] + "' is neither a tensor nor a number");
        }
        return outputs;
    }

private:
    template <class T>
    static Tensor scalar(const std::string& name, const char* dtype, T value) {
        Tensor t;
        t.name = name, t.dtype = dtype;
        t.bytes.resize(sizeof value);
        std::memcpy(t.bytes.data(), &value, sizeof value);
        return t;
    }

    /// A tensor input wraps the host buffer without a copy (ExecuTorch copies it into planned memory or
    /// reads it); a program that takes a Python number there (Int/Double/Bool) gets the scalar's value.
    EValue to_evalue(const Tensor& in, size_t i, std::vector<executorch::extension::TensorPtr>& hold) const {
        const std::string where = "input '" + in.name + "'";
        if (input_tags_[i] != Tag::Tensor) {
            if (in.count() != 1)
                throw edgekit::Error(where + ": the program takes a number, the feed has shape " + edgekit::shape_str(in.shape));
            if (input_tags_[i] == Tag::Int) return EValue(in.int_at(0));
            if (input_tags_[i] == Tag::Double) return EValue(in.at(0));
            if (input_tags_[i] == Tag::Bool) return EValue(in.at(0) != 0.0);
            throw edgekit::Error(where + ": the program takes an input of a kind this runner cannot feed");
        }
        const ScalarType type = scalar_type_of(in.dtype);
        if (type != input_types_[i])
            throw edgekit::Error(where + ": the program expects " + program_inputs_[i] + ", the feed is " + in.dtype +
                                 edgekit::shape_str(in.shape));
        std::vector<executorch::aten::SizesType> sizes;
        for (int64_t d : in.shape) {
            if (d > INT32_MAX) throw edgekit::Error(where + ": dim " + std::to_string(d) + " is too large for ExecuTorch");
            sizes.push_back(static_cast<executorch::aten::SizesType>(d));
        }
        hold.push_back(executorch::extension::make_tensor_ptr(std::move(sizes), const_cast<void*>(in.data()), type));
        return EValue(*hold.back());
    }

    Module module_;
    std::string method_;
    std::vector<std::string> input_names_, output_names_;
    std::vector<Tag> input_tags_;
    std::vector<ScalarType> input_types_;
    std::vector<std::string> program_inputs_;  // "float32[1,3,32,32]" per input, for error messages
};

/// The .pte to load and its method: --model, else artifacts.executorch {path, method}.
std::pair<std::string, std::string> program_of(const edgekit::Bundle& bundle, const std::string& model) {
    const json* entry = bundle.has_artifact("executorch") ? &bundle.artifact("executorch") : nullptr;
    const std::string where = bundle.dir.string() + "/manifest.json: artifacts.executorch";
    if (model.empty() && !entry)
        throw edgekit::Error(bundle.dir.string() + ": the bundle has no executorch artifact (export with --target executorch)");
    if (entry && !entry->is_object()) throw edgekit::Error(where + " is not an object");
    const std::string path = model.empty() ? edgekit::string_field(*entry, "path", where) : model;
    const bool same = entry && entry->value("path", "") == path;  // --model names the artifact's own file
    return {path, same && entry->contains("method") ? edgekit::string_field(*entry, "method", where) : "forward"};
}

}  // namespace

int main(int argc, char** argv) {
    std::string bundle_path = argc > 1 ? argv[1] : "";
    executorch::runtime::register_pal(executorch::runtime::PalImpl::create(keep_log_errors, __FILE__));
    try {
        const edgekit::Options options = edgekit::parse_options(argc, argv, kUsage);
        bundle_path = options.bundle;
        if (options.device != "CPU") throw edgekit::Error("--device " + options.device + ": this runner runs on the CPU only");
        const edgekit::Bundle bundle = edgekit::Bundle::load(options.bundle);
        if (bundle.samples.empty()) throw edgekit::Error(options.bundle + ": the bundle has no testdata to check");
        const auto [model, method] = program_of(bundle, options.model);
        const auto path = edgekit::model_file(bundle, model, !options.model.empty(), options.verify);
        json overrides;
        const std::vector<Tensor> feed = options.bench.enabled ? edgekit::bench_feed(bundle, options.bench, &overrides)
                                                               : std::vector<Tensor>{};
        edgekit::Report report;
        report.bundle = options.bundle, report.runtime = "executorch", report.api = "c++";
        report.device = options.device, report.model = model, report.tol = options.tol;
        report.verified = options.verify;
        edgekit::BenchRun run;
        run.runtime = "executorch", run.api = "c++", run.device = options.device, run.runner = "edgekit_et_run";
        edgekit::describe_artifact(bundle, model, run);
        if (options.bench.threads > 0) {
#ifdef EDGEKIT_ET_THREADPOOL
            executorch::extension::threadpool::get_threadpool()->_unsafe_reset_threadpool(
                static_cast<uint32_t>(options.bench.threads));
#else
            throw edgekit::Error("--threads: this build has no ExecuTorch thread pool (libexecutorch_threadpool)");
#endif
        }
        run.rss_before_load_mb = edgekit::proc_status_mb("VmRSS");
        const auto start = std::chrono::steady_clock::now();
        ExecuTorchRunner runner(path.string(), method, bundle.names("inputs"), bundle.names("outputs"));
        run.load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        edgekit::check_samples(bundle, report, [&](const std::vector<Tensor>& in) { return runner.run(in); });
        if (!options.bench.enabled || !report.passed()) {  // a model that fails its testdata is not timed
            if (options.bench.enabled) std::cerr << "error: the testdata check failed: not benchmarking\n";
            std::cout << report.to_json().dump() << std::endl;
            return report.passed() ? 0 : 1;
        }
        run.ms = edgekit::time_calls([&] { runner.run(feed); }, options.bench);
        std::cout << edgekit::bench_document(bundle, options, feed, overrides, report, run, EDGEKIT_EXECUTORCH_VERSION).dump()
                  << std::endl;
        return 0;
    } catch (const std::exception& e) {  // edgekit::Error, json errors
        return edgekit::report_error(bundle_path, e.what());
    }
}
