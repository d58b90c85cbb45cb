// Header-only reader for an edgekit bundle (schema edgekit.bundle/1): manifest.json and the reference
// samples under testdata/ (index.json + raw little-endian C-order .bin tensors). Needs only the C++17
// standard library and nlohmann-json; every runtime sample (OpenVINO, TensorRT) builds on it. The files
// are untrusted: JSON types, dims and byte counts are checked before use, and every path must resolve
// inside the bundle (`resolve_inside`).
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
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

/// The highest rank a bundle's tensor may have (TensorRT's Dims::MAX_DIMS, the C reader's EK_MAX_RANK).
constexpr size_t kMaxRank = 8;

/// Elements of `shape`; false when a dim is negative or the count of elements or of `item_size`-byte
/// elements overflows size_t.
inline bool checked_count(const std::vector<int64_t>& shape, size_t item_size, size_t* count) {
    size_t n = 1;
    for (int64_t d : shape) {
        if (d < 0 || static_cast<uint64_t>(d) > std::numeric_limits<size_t>::max()) return false;
        if (d != 0 && n > std::numeric_limits<size_t>::max() / static_cast<size_t>(d)) return false;
        n *= static_cast<size_t>(d);
    }
    if (item_size && n > std::numeric_limits<size_t>::max() / item_size) return false;
    *count = n;
    return true;
}

inline std::string shape_str(const std::vector<int64_t>& shape) {
    std::ostringstream out;
    out << '[';
    for (size_t i = 0; i < shape.size(); ++i) out << (i ? "," : "") << shape[i];
    out << ']';
    return out.str();
}

/// A named tensor held in host memory (native byte order).
struct Tensor {
    std::string name, dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;

    size_t count() const {
        size_t n = 0;
        if (!checked_count(shape, 1, &n)) throw Error("tensor '" + name + "': shape " + shape_str(shape) + " overflows");
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

inline bool host_is_little_endian() {
    const uint16_t probe = 1;
    uint8_t first;
    std::memcpy(&first, &probe, 1);
    return first == 1;
}

inline json read_json(const fs::path& path, const std::string& what) {
    std::ifstream in(path);
    if (!in) throw Error(what + ": cannot open");
    try {
        return json::parse(in);
    } catch (const json::exception& e) {
        throw Error(what + ": invalid JSON (" + e.what() + ")");
    }
}

/// Containment: `rel` (a path read from the manifest, the testdata index or the command line) resolved
/// inside the bundle whose canonical path is `root` (relative to its folder `sub`), to a regular file.
/// Throws Error "what 'rel': reason" for an absolute path, a ".." component, a file that cannot be opened
/// and one that resolves (through a symlink) outside the bundle.
inline fs::path resolve_inside(const fs::path& root, const std::string& sub, const std::string& rel,
                               const std::string& what) {
    const std::string where = what + " '" + rel + "'";
    if (rel.empty()) throw Error(what + ": empty path");
    // Refused before touching the file system, whatever exists there ('\' and "C:" count on every host).
    const bool drive = rel.size() > 1 && std::isalpha(static_cast<unsigned char>(rel[0])) && rel[1] == ':';
    if (rel[0] == '/' || rel[0] == '\\' || drive) throw Error(where + ": absolute path refused (bundle paths are relative)");
    for (size_t at = 0; at <= rel.size();) {
        const size_t end = std::min(rel.find_first_of("/\\", at), rel.size());
        if (rel.compare(at, end - at, "..") == 0)
            throw Error(where + ": '..' refused (bundle paths stay inside the bundle)");
        at = end + 1;
    }
    std::error_code ec;
    const fs::path real = fs::canonical(root / sub / rel, ec);  // follows every symlink on the way
    if (ec) throw Error(where + ": cannot open (" + ec.message() + ")");
    const auto [r, q] = std::mismatch(root.begin(), root.end(), real.begin(), real.end());
    if (r != root.end() || q == real.end())
        throw Error(where + ": resolves to " + real.string() + ", outside the bundle " + root.string() + " (a symlink?)");
    if (!fs::is_regular_file(real, ec)) throw Error(where + ": not a regular file");
    return real;
}

inline const std::string& string_field(const json& object, const char* key, const std::string& where) {
    const auto it = object.find(key);
    if (it == object.end() || !it->is_string()) throw Error(where + ": " + key + " is missing or not a string");
    return it->get_ref<const std::string&>();
}

/// A shape from index.json: at most kMaxRank integers in [0, 2^63).
inline std::vector<int64_t> read_shape(const json& shape, const std::string& where) {
    if (!shape.is_array()) throw Error(where + ": shape is missing or not an array");
    if (shape.size() > kMaxRank) throw Error(where + ": shape has rank > " + std::to_string(kMaxRank));
    std::vector<int64_t> dims;
    for (const json& d : shape) {
        const std::string at = where + ": shape[" + std::to_string(dims.size()) + "]";
        if (!d.is_number()) throw Error(at + " is not a number");
        if (d.is_number_float()) {  // 2.0 is 2 (as the C reader, which cannot tell them apart), 2.5 is refused
            const double v = d.get<double>();
            if (v < 0) throw Error(at + " = " + d.dump() + " is negative");
            if (!(v <= 9007199254740992.0) || v != std::floor(v))
                throw Error(at + " = " + d.dump() + " is out of range (an integer in [0, 2^53])");
            dims.push_back(static_cast<int64_t>(v));
        } else if (d.is_number_unsigned()) {
            if (d.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                throw Error(at + " = " + d.dump() + " is out of range (an integer in [0, 2^63))");
            dims.push_back(static_cast<int64_t>(d.get<uint64_t>()));
        } else {
            if (d.get<int64_t>() < 0) throw Error(at + " = " + d.dump() + " is negative");
            dims.push_back(d.get<int64_t>());
        }
    }
    return dims;
}

/// Read one tensor described by an index.json entry {"file", "shape", "dtype"}; `where` names the entry.
inline Tensor read_tensor(const fs::path& root, const fs::path& dir, const std::string& name, const json& meta,
                          const std::string& where) {
    if (!meta.is_object()) throw Error(where + ": not an object {file, dtype, shape}");
    Tensor t;
    t.name = name;
    t.dtype = string_field(meta, "dtype", where);
    dtype_size(t.dtype);  // throws for an unknown dtype
    t.shape = read_shape(meta.contains("shape") ? meta.at("shape") : json(), where);
    size_t count = 0;
    if (!checked_count(t.shape, t.item_size(), &count))
        throw Error(where + ": shape " + shape_str(t.shape) + " of " + t.dtype + " overflows the byte count");
    const size_t expected = count * t.item_size();
    const std::string& file = string_field(meta, "file", where);
    const fs::path real = resolve_inside(root, "testdata", file, where + " file");
    const std::string shown = (dir / "testdata" / file).string();
    std::error_code ec;
    const uintmax_t size = fs::file_size(real, ec);
    // Checked before allocating: a shape cannot make the reader allocate more than the file holds.
    if (ec || size != expected)
        throw Error(shown + ": size does not match " + t.dtype + shape_str(t.shape) + ": " + std::to_string(expected) +
                    " bytes expected, the file has " + (ec ? "?" : std::to_string(size)));
    std::ifstream in(real, std::ios::binary);
    if (!in) throw Error(shown + ": cannot open");
    t.bytes.resize(expected);
    in.read(reinterpret_cast<char*>(t.bytes.data()), static_cast<std::streamsize>(expected));
    if (static_cast<size_t>(in.gcount()) != expected) throw Error(shown + ": short read");
    if (!host_is_little_endian())  // the files are little-endian; swap each element on big-endian hosts
        for (size_t i = 0; i < count; ++i)
            std::reverse(t.bytes.begin() + i * t.item_size(), t.bytes.begin() + (i + 1) * t.item_size());
    return t;
}

struct Sample {
    std::vector<Tensor> inputs, outputs;
};

/// A bundle directory: its manifest and its reference samples.
struct Bundle {
    fs::path dir;
    fs::path root;  // canonical `dir`: every file read must resolve under it
    json manifest;
    std::vector<Sample> samples;

    static Bundle load(const fs::path& dir) {
        Bundle b;
        b.dir = dir;
        const std::string manifest_name = (dir / "manifest.json").string();
        std::error_code ec;
        b.root = fs::canonical(dir, ec);
        if (ec) throw Error(manifest_name + ": cannot open (" + ec.message() + ")");
        b.manifest = read_json(b.resolve("manifest.json", manifest_name), manifest_name);
        if (!b.manifest.is_object() || b.manifest.value("schema", "") != "edgekit.bundle/1")
            throw Error(manifest_name + ": not an edgekit.bundle/1 manifest");
        const std::string index_name = (dir / "testdata" / "index.json").string();
        if (!fs::exists(fs::symlink_status(dir / "testdata" / "index.json", ec)))
            return b;  // a bundle exported without reference data
        const json index = read_json(b.resolve("testdata/index.json", index_name), index_name);
        if (!index.is_object() || index.value("format", "") != "edgekit.testdata/1" ||
            !index.contains("samples") || !index.at("samples").is_array())
            throw Error(index_name + ": unknown testdata format");
        for (const auto& entry : index.at("samples")) {
            Sample s;
            for (const char* role : {"inputs", "outputs"}) {
                const std::string where = index_name + ": samples[" + std::to_string(b.samples.size()) + "]." + role;
                if (!entry.is_object() || !entry.contains(role) || !entry.at(role).is_object())
                    throw Error(where + " is not an object");
                auto& tensors = role[0] == 'i' ? s.inputs : s.outputs;
                for (const auto& [name, meta] : entry.at(role).items())
                    tensors.push_back(read_tensor(b.root, dir, name, meta, where + " '" + name + "'"));
            }
            b.samples.push_back(std::move(s));
        }
        return b;
    }

    /// `rel` inside this bundle (see resolve_inside); `what` names where the path came from.
    fs::path resolve(const std::string& rel, const std::string& what) const { return resolve_inside(root, "", rel, what); }

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
