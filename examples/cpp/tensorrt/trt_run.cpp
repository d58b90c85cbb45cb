// edgekit_trt_run: deserialize a bundle's TensorRT engine (model.smXX.engine, listed in the manifest's
// artifacts.tensorrt) with the TensorRT runtime, run every reference sample in testdata/ on the GPU and
// compare each output with the stored reference. Prints one JSON line; exit 0 passed, 1 mismatch, 2 error.
// --bench then times one sample (host wall time of a synchronous call, copies included) and prints one
// `edgekit bench`-style JSON document instead (../include/edgekit/bench.hpp).
#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "edgekit/bench.hpp"
#include "edgekit/bundle.hpp"
#include "edgekit/check.hpp"
#include "edgekit/integrity.hpp"

namespace {

using edgekit::Error;
using edgekit::Tensor;

const char* kUsage =
    "usage: edgekit_trt_run BUNDLE [--device GPU_INDEX] [--model FILE.engine] [--atol 1e-4] [--rtol 1e-3] [--no-verify]\n"
    "                       [--bench [--warmup 10] [--iters N | --seconds S] [--sample K] [--feed NAME=VALUE]...]\n"
    "  runs the bundle's engine for this GPU's compute capability (or --model) on its testdata, after checking\n"
    "  the engine against the manifest's sha256 and size_bytes (--no-verify skips that check); --bench then\n"
    "  times testdata sample K (default 0) and prints edgekit bench's JSON (default: 200 calls or 20 s)";

void check_cuda(cudaError_t status, const std::string& what) {
    if (status != cudaSuccess) throw Error(what + ": " + cudaGetErrorString(status));
}

class Logger : public nvinfer1::ILogger {
    void log(Severity severity, const char* message) noexcept override {
        if (severity <= Severity::kWARNING) std::cerr << "tensorrt: " << message << "\n";
    }
};

std::string dtype_of(nvinfer1::DataType type) {
    switch (type) {
        case nvinfer1::DataType::kFLOAT: return "float32";
        case nvinfer1::DataType::kHALF: return "float16";
        case nvinfer1::DataType::kINT8: return "int8";
        case nvinfer1::DataType::kINT32: return "int32";
        case nvinfer1::DataType::kINT64: return "int64";
        case nvinfer1::DataType::kBOOL: return "bool";
        case nvinfer1::DataType::kUINT8: return "uint8";
        default: throw Error("unsupported TensorRT I/O data type " + std::to_string(static_cast<int>(type)));
    }
}

/// The engine may declare other I/O types than the testdata (int32 for an int64 input): convert values.
Tensor convert(const Tensor& in, const std::string& dtype) {
    if (in.dtype == dtype) return in;
    Tensor out{in.name, dtype, in.shape, {}};
    out.bytes.resize(out.count() * out.item_size());
    for (size_t i = 0; i < in.count(); ++i) {
        uint8_t* p = out.bytes.data() + i * out.item_size();
        auto store = [p](auto v) { std::memcpy(p, &v, sizeof v); };
        const int64_t n = in.is_integer() ? in.int_at(i) : static_cast<int64_t>(in.at(i));
        if (dtype == "float32") store(static_cast<float>(in.at(i)));
        else if (dtype == "int64") store(n);
        else if (dtype == "int32") store(static_cast<int32_t>(n));
        else if (dtype == "int8") store(static_cast<int8_t>(n));
        else if (dtype == "uint8" || dtype == "bool") store(static_cast<uint8_t>(dtype == "bool" ? n != 0 : n));
        else throw Error("input '" + in.name + "': cannot convert " + in.dtype + " to the engine's " + dtype);
    }
    return out;
}

std::vector<char> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot open");
    return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

/// The engine built for this GPU: artifacts.tensorrt[*].compute_capability == "SM<major><minor>".
std::string pick_engine(const edgekit::Bundle& bundle, int gpu) {
    cudaDeviceProp prop{};
    check_cuda(cudaGetDeviceProperties(&prop, gpu), "cudaGetDeviceProperties");
    const std::string want = "SM" + std::to_string(prop.major * 10 + prop.minor);
    std::string have;
    for (const auto& entry : bundle.artifact("tensorrt")) {
        if (entry.value("compute_capability", "") == want) return entry.at("path").get<std::string>();
        have += (have.empty() ? "" : ", ") + entry.value("compute_capability", "?");
    }
    throw Error("no engine for " + want + " in the bundle (it has: " + have + "); export with --trt-arch current");
}

struct DeviceBuffer {
    void* ptr = nullptr;
    size_t size = 0;
    DeviceBuffer() = default;
    DeviceBuffer(const DeviceBuffer&) = delete;
    ~DeviceBuffer() { if (ptr) cudaFree(ptr); }
    void* reserve(size_t bytes) {
        bytes = bytes ? bytes : 1;  // TensorRT wants a non-null address even for empty tensors
        if (bytes > size) {
            if (ptr) cudaFree(ptr);
            ptr = nullptr, size = 0;
            check_cuda(cudaMalloc(&ptr, bytes), "cudaMalloc");
            size = bytes;
        }
        return ptr;
    }
};

class TrtRunner {
public:
    TrtRunner(const std::string& engine_path, int gpu) {
        check_cuda(cudaSetDevice(gpu), "cudaSetDevice");
        const std::vector<char> blob = read_file(engine_path);
        runtime_.reset(nvinfer1::createInferRuntime(logger_));
        if (!runtime_) throw Error("createInferRuntime failed");
        engine_.reset(runtime_->deserializeCudaEngine(blob.data(), blob.size()));
        if (!engine_) throw Error(engine_path + ": cannot deserialize (built by another TensorRT version or for another GPU?)");
        context_.reset(engine_->createExecutionContext());
        if (!context_) throw Error("createExecutionContext failed");
        check_cuda(cudaStreamCreate(&stream_), "cudaStreamCreate");
        for (int32_t i = 0; i < engine_->getNbIOTensors(); ++i) names_.emplace_back(engine_->getIOTensorName(i));
    }
    ~TrtRunner() { cudaStreamDestroy(stream_); }

    std::vector<Tensor> run(const std::vector<Tensor>& inputs) {
        std::vector<Tensor> staged, outputs;  // host buffers must outlive the enqueue
        staged.reserve(names_.size());
        for (const std::string& name : names_) {
            if (engine_->getTensorIOMode(name.c_str()) != nvinfer1::TensorIOMode::kINPUT) continue;
            const Tensor* in = nullptr;
            for (const Tensor& t : inputs) in = t.name == name ? &t : in;
            if (!in) throw Error("the testdata has no input '" + name + "'");
            staged.push_back(convert(*in, dtype_of(engine_->getTensorDataType(name.c_str()))));
            Tensor& t = staged.back();
            if (t.shape.size() > static_cast<size_t>(nvinfer1::Dims::MAX_DIMS))  // dims.d holds MAX_DIMS entries
                throw Error("input '" + name + "': rank " + std::to_string(t.shape.size()) + " exceeds TensorRT's " +
                            std::to_string(nvinfer1::Dims::MAX_DIMS));
            nvinfer1::Dims dims{};
            dims.nbDims = static_cast<int32_t>(t.shape.size());
            for (size_t k = 0; k < t.shape.size(); ++k) dims.d[k] = static_cast<decltype(dims.d[0] + 0)>(t.shape[k]);
            if (!context_->setInputShape(name.c_str(), dims)) throw Error("input '" + name + "': shape rejected");
            void* address = t.data();  // shape tensors (a Loop's trip count) live in host memory
            if (engine_->getTensorLocation(name.c_str()) == nvinfer1::TensorLocation::kDEVICE) {
                address = buffers_[name].reserve(t.bytes.size());
                check_cuda(cudaMemcpyAsync(address, t.data(), t.bytes.size(), cudaMemcpyHostToDevice, stream_), "copy in");
            }
            context_->setTensorAddress(name.c_str(), address);
        }
        for (const std::string& name : names_) {
            if (engine_->getTensorIOMode(name.c_str()) != nvinfer1::TensorIOMode::kOUTPUT) continue;
            const nvinfer1::Dims dims = context_->getTensorShape(name.c_str());
            Tensor out{name, dtype_of(engine_->getTensorDataType(name.c_str())), {}, {}};
            for (int32_t k = 0; k < dims.nbDims; ++k) {
                if (dims.d[k] < 0) throw Error("output '" + name + "' has a data-dependent shape (not supported here)");
                out.shape.push_back(dims.d[k]);
            }
            out.bytes.resize(out.count() * out.item_size());
            outputs.push_back(std::move(out));
            const bool on_device = engine_->getTensorLocation(name.c_str()) == nvinfer1::TensorLocation::kDEVICE;
            context_->setTensorAddress(name.c_str(), on_device ? buffers_[name].reserve(outputs.back().bytes.size())
                                                               : outputs.back().data());
        }
        if (!context_->enqueueV3(stream_)) throw Error("enqueueV3 failed");
        for (Tensor& out : outputs)
            if (engine_->getTensorLocation(out.name.c_str()) == nvinfer1::TensorLocation::kDEVICE)
                check_cuda(cudaMemcpyAsync(out.data(), buffers_[out.name].ptr, out.bytes.size(), cudaMemcpyDeviceToHost,
                                           stream_), "copy out");
        check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
        return outputs;
    }

private:
    Logger logger_;
    std::unique_ptr<nvinfer1::IRuntime> runtime_;  // destroyed last: members go in reverse order
    std::unique_ptr<nvinfer1::ICudaEngine> engine_;
    std::unique_ptr<nvinfer1::IExecutionContext> context_;
    cudaStream_t stream_ = nullptr;
    std::vector<std::string> names_;
    std::map<std::string, DeviceBuffer> buffers_;
};

}  // namespace

int main(int argc, char** argv) {
    std::string bundle_path = argc > 1 ? argv[1] : "";
    try {
        const edgekit::Options options = edgekit::parse_options(argc, argv, kUsage);
        bundle_path = options.bundle;
        const int gpu = options.device == "CPU" ? 0 : std::stoi(options.device);
        const edgekit::Bundle bundle = edgekit::Bundle::load(options.bundle);
        if (bundle.samples.empty()) throw Error(options.bundle + ": the bundle has no testdata to check");
        const std::string engine = options.model.empty() ? pick_engine(bundle, gpu) : options.model;
        const auto path = edgekit::model_file(bundle, engine, !options.model.empty(), options.verify);
        edgekit::json overrides;
        const std::vector<Tensor> feed = options.bench.enabled ? edgekit::bench_feed(bundle, options.bench, &overrides)
                                                               : std::vector<Tensor>{};
        edgekit::Report report;
        report.bundle = options.bundle, report.runtime = "tensorrt", report.api = "c++";
        report.device = "cuda:" + std::to_string(gpu), report.model = engine, report.tol = options.tol;
        report.verified = options.verify;
        edgekit::BenchRun run;
        run.runtime = "tensorrt", run.api = "c++", run.device = report.device, run.runner = "edgekit_trt_run";
        edgekit::describe_artifact(bundle, engine, run);
        run.rss_before_load_mb = edgekit::proc_status_mb("VmRSS");
        const auto start = std::chrono::steady_clock::now();
        TrtRunner runner(path.string(), gpu);
        run.load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        edgekit::check_samples(bundle, report, [&](const std::vector<Tensor>& in) { return runner.run(in); });
        if (!options.bench.enabled || !report.passed()) {  // a model that fails its testdata is not timed
            if (options.bench.enabled) std::cerr << "error: the testdata check failed: not benchmarking\n";
            std::cout << report.to_json().dump() << std::endl;
            return report.passed() ? 0 : 1;
        }
        run.ms = edgekit::time_calls([&] { runner.run(feed); }, options.bench);
        const std::string version = std::to_string(getInferLibVersion());
        std::cout << edgekit::bench_document(bundle, options, feed, overrides, report, run, version).dump() << std::endl;
        return 0;
    } catch (const std::exception& e) {
        return edgekit::report_error(bundle_path, e.what());
    }
}
