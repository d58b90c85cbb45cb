// Header-only reader for an edgekit bundle (schema edgekit.bundle/1): manifest.json and the reference
// samples under testdata/ (index.json + raw little-endian C-order .bin tensors). Needs only the C++17
// standard library and nlohmann-json; every runtime sample (OpenVINO, TensorRT) builds on it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace edgekit {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;  // keeps the manifest's input/output order

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Bytes per element of a numpy dtype name as written in the manifest ("float32", "int64", ...).
inline size_t dtype_size(const std::string& dtype) {
    static const std::pair<const char*, size_t> sizes[] = {
        {"float32", 4}, {"float16", 2}, {"float64", 8}, {"int64", 8}, {"int32", 4}, {"int16", 2},
        {"int8", 1},    {"uint8", 1},   {"uint16", 2},  {"uint32", 4}, {"uint64", 8}, {"bool", 1}};
    for (const auto& [name, size] : sizes)
        if (dtype == name) return size;
    throw Error("unsupported dtype '" + dtype + "'");
}

inline bool dtype_is_integer(const std::string& dtype) {
    return dtype.rfind("int", 0) == 0 || dtype.rfind("uint", 0) == 0 || dtype == "bool";
}

inline double half_to_double(uint16_t h) {
    const int exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
    const double sign = (h & 0x8000) ? -1.0 : 1.0;
    if (exponent == 0) return sign * std::ldexp(mantissa, -24);
    if (exponent == 31) return mantissa ? NAN : sign * INFINITY;
    return sign * std::ldexp(mantissa + 1024, exponent - 25);
}

/// A named tensor held in host memory (native byte order).
struct Tensor {
    std::string name, dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;

    size_t count() const {
        size_t n = 1;
        for (auto d : shape) n *= static_cast<size_t>(d);
        return n;
    }
    size_t item_size() const { return dtype_size(dtype); }
    bool is_integer() const { return dtype_is_integer(dtype); }
    bool is_scalar() const { return shape.empty(); }
    const void* data() const { return bytes.data(); }
    void* data() { return bytes.data(); }

    /// Element i as a double (for error statistics; integers compare exactly with `int_at`).
    double at(size_t i) const {
        const uint8_t* p = bytes.data() + i * item_size();
        auto load = [p](auto v) { std::memcpy(&v, p, sizeof v); return v; };
        if (dtype == "float32") return load(float{});
        if (dtype == "float64") return load(double{});
        if (dtype == "float16") return half_to_double(load(uint16_t{}));
        if (dtype == "int64") return static_cast<double>(load(int64_t{}));
        if (dtype == "int32") return load(int32_t{});
        if (dtype == "int16") return load(int16_t{});
        if (dtype == "int8") return load(int8_t{});
        if (dtype == "uint64") return static_cast<double>(load(uint64_t{}));
        if (dtype == "uint32") return load(uint32_t{});
        if (dtype == "uint16") return load(uint16_t{});
        return *p;  // uint8, bool
    }
    /// Element i of an integer tensor, exactly (int64 beyond 2^53 would not survive a double).
    int64_t int_at(size_t i) const {
        const uint8_t* p = bytes.data() + i * item_size();
        auto load = [p](auto v) { std::memcpy(&v, p, sizeof v); return v; };
        if (dtype == "int64") return load(int64_t{});
        if (dtype == "uint64") return static_cast<int64_t>(load(uint64_t{}));
        return static_cast<int64_t>(at(i));
    }
};

inline std::string shape_str(const std::vector<int64_t>& shape) {
    std::ostringstream out;
    out << '[';
    for (size_t i = 0; i < shape.size(); ++i) out << (i ? "," : "") << shape[i];
    out << ']';
    return out.str();
}

inline bool host_is_little_endian() {
    const uint16_t probe = 1;
    uint8_t first;
    std::memcpy(&first, &probe, 1);
    return first == 1;
}

inline json read_json(const fs::path& path) {
    std::ifstream in(path);
    if (!in) throw Error(path.string() + ": cannot open");
    try {
        return json::parse(in);
    } catch (const json::exception& e) {
        throw Error(path.string() + ": invalid JSON (" + e.what() + ")");
    }
}

/// Read one tensor described by an index.json entry {"file", "shape", "dtype"}.
inline Tensor read_tensor(const fs::path& folder, const std::string& name, const json& meta) {
    Tensor t;
    t.name = name;
    t.dtype = meta.at("dtype").get<std::string>();
    t.shape = meta.at("shape").get<std::vector<int64_t>>();
    const fs::path file = folder / meta.at("file").get<std::string>();
    const size_t expected = t.count() * t.item_size();
    std::ifstream in(file, std::ios::binary);
    if (!in) throw Error(file.string() + ": cannot open");
    t.bytes.resize(expected);
    in.read(reinterpret_cast<char*>(t.bytes.data()), static_cast<std::streamsize>(expected));
    if (static_cast<size_t>(in.gcount()) != expected || in.peek() != std::char_traits<char>::eof())
        throw Error(file.string() + ": size does not match " + t.dtype + shape_str(t.shape));
    if (!host_is_little_endian())  // the files are little-endian; swap each element on big-endian hosts
        for (size_t i = 0; i < t.count(); ++i)
            std::reverse(t.bytes.begin() + i * t.item_size(), t.bytes.begin() + (i + 1) * t.item_size());
    return t;
}

struct Sample {
    std::vector<Tensor> inputs, outputs;
};

/// A bundle directory: its manifest and its reference samples.
struct Bundle {
    fs::path dir;
    json manifest;
    std::vector<Sample> samples;

    static Bundle load(const fs::path& dir) {
        Bundle b;
        b.dir = dir;
        b.manifest = read_json(dir / "manifest.json");
        if (b.manifest.value("schema", "") != "edgekit.bundle/1")
            throw Error((dir / "manifest.json").string() + ": not an edgekit.bundle/1 manifest");
        const fs::path folder = dir / "testdata";
        if (!fs::exists(folder / "index.json")) return b;  // a bundle exported without reference data
        const json index = read_json(folder / "index.json");
        if (index.value("format", "") != "edgekit.testdata/1")
            throw Error((folder / "index.json").string() + ": unknown testdata format");
        for (const auto& entry : index.at("samples")) {
            Sample s;
            for (const auto& [name, meta] : entry.at("inputs").items()) s.inputs.push_back(read_tensor(folder, name, meta));
            for (const auto& [name, meta] : entry.at("outputs").items()) s.outputs.push_back(read_tensor(folder, name, meta));
            b.samples.push_back(std::move(s));
        }
        return b;
    }

    /// Names of the model's inputs or outputs ("inputs" / "outputs"), in manifest order.
    std::vector<std::string> names(const std::string& role) const {
        std::vector<std::string> out;
        for (const auto& spec : manifest.at(role)) out.push_back(spec.at("name").get<std::string>());
        return out;
    }

    bool has_artifact(const std::string& key) const { return manifest.at("artifacts").contains(key); }

    /// The artifact entry for `key` ("openvino", "onnx", "tensorrt" — a list for TensorRT).
    const json& artifact(const std::string& key) const {
        const json& artifacts = manifest.at("artifacts");
        if (!artifacts.contains(key)) throw Error(dir.string() + ": the bundle has no " + key + " artifact");
        return artifacts.at(key);
    }
};

}  // namespace edgekit
