// edgekit_run: load an edgekit bundle's OpenVINO IR with the OpenVINO C++ runtime, feed every reference
// sample in testdata/, compare each output with the stored reference and print one JSON line. With --bench,
// then time one sample and print one `edgekit bench`-style JSON document instead (bench.hpp).
// Exit status: 0 all outputs within tolerance, 1 a mismatch (no timing then), 2 a usage or load error.
#include <chrono>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <openvino/openvino.hpp>

#include "edgekit/bench.hpp"
#include "edgekit/bundle.hpp"
#include "edgekit/check.hpp"
#include "edgekit/integrity.hpp"

namespace {

using edgekit::Tensor;
using edgekit::json;

const char* kUsage =
    "usage: edgekit_run BUNDLE [--device CPU] [--model FILE] [--atol 1e-4] [--rtol 1e-3] [--no-verify]\n"
    "                  [--bench [--warmup 10] [--iters N | --seconds S] [--threads N] [--sample K] [--feed NAME=VALUE]...]\n"
    "  runs BUNDLE's OpenVINO IR (or --model: an .xml/.onnx file in the bundle) on its testdata, after checking\n"
    "  the model files against the manifest's sha256 and size_bytes (--no-verify skips that check); --bench then\n"
    "  times testdata sample K (default 0) and prints edgekit bench's JSON (default: 200 calls or 20 s)";

ov::element::Type element_of(const std::string& dtype) {
    static const std::map<std::string, ov::element::Type> types = {
        {"float32", ov::element::f32}, {"float16", ov::element::f16}, {"float64", ov::element::f64},
        {"int64", ov::element::i64},   {"int32", ov::element::i32},   {"int16", ov::element::i16},
        {"int8", ov::element::i8},     {"uint8", ov::element::u8},    {"uint16", ov::element::u16},
        {"uint32", ov::element::u32},  {"uint64", ov::element::u64},  {"bool", ov::element::boolean}};
    auto it = types.find(dtype);
    if (it == types.end()) throw edgekit::Error("no OpenVINO element type for dtype " + dtype);
    return it->second;
}

std::string dtype_of(const ov::element::Type& type) {
    static const std::map<ov::element::Type_t, std::string> names = {
        {ov::element::f32, "float32"}, {ov::element::f16, "float16"}, {ov::element::f64, "float64"},
        {ov::element::i64, "int64"},   {ov::element::i32, "int32"},   {ov::element::i16, "int16"},
        {ov::element::i8, "int8"},     {ov::element::u8, "uint8"},    {ov::element::u16, "uint16"},
        {ov::element::u32, "uint32"},  {ov::element::u64, "uint64"},  {ov::element::boolean, "bool"}};
    auto it = names.find(type);
    if (it == names.end()) throw edgekit::Error("unsupported OpenVINO output type " + type.get_type_name());
    return it->second;
}

/// One compiled model and its infer request; run() copies the outputs out of OpenVINO's buffers.
class OpenVinoRunner {
public:
    OpenVinoRunner(const std::string& model_path, const std::string& device,
                   std::vector<std::string> output_names, long threads)
        : output_names_(std::move(output_names)) {
        std::shared_ptr<ov::Model> model = core_.read_model(model_path);
        // Parity with the reference needs f32 arithmetic: CPUs with bf16/AMX would otherwise downcast. The
        // LATENCY hint is the Python runner's (edgekit/runtimes/openvino.py), so bench rows compare.
        ov::AnyMap config = {ov::hint::inference_precision(ov::element::f32),
                             ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY)};
        if (threads > 0) config.emplace(ov::inference_num_threads(static_cast<int>(threads)));
        compiled_ = core_.compile_model(model, device, config);
        request_ = compiled_.create_infer_request();
    }

    std::vector<Tensor> run(const std::vector<Tensor>& inputs) {
        for (const Tensor& in : inputs) {
            ov::Shape shape(in.shape.begin(), in.shape.end());
            // Wraps the host buffer without a copy; OpenVINO only reads inputs.
            ov::Tensor tensor(element_of(in.dtype), shape, const_cast<void*>(in.data()));
            request_.set_tensor(in.name, tensor);
        }
        request_.infer();
        std::vector<Tensor> outputs;
        for (const std::string& name : output_names_) {
            const ov::Tensor tensor = request_.get_tensor(name);
            Tensor out;
            out.name = name;
            out.dtype = dtype_of(tensor.get_element_type());
            for (size_t d : tensor.get_shape()) out.shape.push_back(static_cast<int64_t>(d));
            const auto* data = static_cast<const uint8_t*>(tensor.data());
            out.bytes.assign(data, data + tensor.get_byte_size());
            outputs.push_back(std::move(out));
        }
        return outputs;
    }

private:
    ov::Core core_;
    ov::CompiledModel compiled_;
    ov::InferRequest request_;
    std::vector<std::string> output_names_;
};

}  // namespace

int main(int argc, char** argv) {
    std::string bundle_path = argc > 1 ? argv[1] : "";
    try {
        const edgekit::Options options = edgekit::parse_options(argc, argv, kUsage);
        bundle_path = options.bundle;
        const edgekit::Bundle bundle = edgekit::Bundle::load(options.bundle);
        if (bundle.samples.empty()) throw edgekit::Error(options.bundle + ": the bundle has no testdata to check");
        std::string model = options.model;
        if (model.empty())  // OpenVINO reads the ONNX file too, for bundles exported without IR
            model = bundle.artifact(bundle.has_artifact("openvino") ? "openvino" : "onnx").at("path").get<std::string>();
        const auto path = edgekit::model_file(bundle, model, !options.model.empty(), options.verify);
        json overrides;
        const std::vector<Tensor> feed = options.bench.enabled ? edgekit::bench_feed(bundle, options.bench, &overrides)
                                                               : std::vector<Tensor>{};
        edgekit::Report report;
        report.bundle = options.bundle, report.runtime = "openvino", report.api = "c++";
        report.device = options.device, report.model = model, report.tol = options.tol;
        report.verified = options.verify;
        edgekit::BenchRun run;
        run.runtime = "openvino", run.api = "c++", run.device = options.device, run.runner = "edgekit_run";
        edgekit::describe_artifact(bundle, model, run);
        run.rss_before_load_mb = edgekit::proc_status_mb("VmRSS");
        const auto start = std::chrono::steady_clock::now();
        OpenVinoRunner runner(path.string(), options.device, bundle.names("outputs"), options.bench.threads);
        run.load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        edgekit::check_samples(bundle, report, [&](const std::vector<Tensor>& in) { return runner.run(in); });
        if (!options.bench.enabled || !report.passed()) {  // a model that fails its testdata is not timed
            if (options.bench.enabled) std::cerr << "error: the testdata check failed: not benchmarking\n";
            std::cout << report.to_json().dump() << std::endl;
            return report.passed() ? 0 : 1;
        }
        run.ms = edgekit::time_calls([&] { runner.run(feed); }, options.bench);
        const std::string version = ov::get_openvino_version().buildNumber;
        std::cout << edgekit::bench_document(bundle, options, feed, overrides, report, run, version).dump() << std::endl;
        return 0;
    } catch (const std::exception& e) {  // edgekit::Error, ov::Exception, json errors
        return edgekit::report_error(bundle_path, e.what());
    }
}
