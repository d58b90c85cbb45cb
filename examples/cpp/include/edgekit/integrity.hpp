// Integrity for the C++ runners (DESIGN.md §8): the model file a runner is about to load must resolve
// inside the bundle and match the manifest's sha256 (weights_sha256, data_sha256) and size_bytes. The
// SHA-256 is the C example's header-only one (examples/c/include/edgekit_sha256.h), not a new dependency.
#pragma once

#include <cctype>
#include <cstdint>
#include <string>
#include <utility>

#include "edgekit/bundle.hpp"
#include "edgekit_sha256.h"

namespace edgekit {

/// Lowercase hex SHA-256 of a file and its size; throws Error when it cannot be read.
inline std::string sha256_file(const fs::path& path, uint64_t* size) {
    char hex[65];
    if (ek_sha256_file(path.string().c_str(), hex, size) != 0) throw Error(path.string() + ": cannot read");
    return hex;
}

/// The artifacts entry whose "path" is `file` (artifacts.<key>, or an element of a list such as
/// artifacts.tensorrt) and its key; nullptr when the manifest lists no such file.
inline const json* artifact_for(const Bundle& bundle, const std::string& file, std::string* key) {
    auto matches = [&](const json& e) { return e.is_object() && e.contains("path") && e.at("path") == file; };
    const auto artifacts = bundle.manifest.find("artifacts");
    if (artifacts == bundle.manifest.end() || !artifacts->is_object()) return nullptr;
    for (const auto& [name, value] : artifacts->items()) {
        const json* found = matches(value) ? &value : nullptr;
        if (value.is_array())
            for (const json& element : value)
                if (!found && matches(element)) found = &element;
        if (found) {
            *key = name;
            return found;
        }
    }
    return nullptr;
}

/// The files of one artifact entry ("path", plus "weights" or "data") must resolve inside the bundle and,
/// when `verify`, match its digests and size_bytes; throws Error naming the file and both digests (or sizes).
inline void check_artifact(const Bundle& bundle, const json& entry, const std::string& key, bool verify) {
    static const std::pair<const char*, const char*> parts[] = {
        {"path", "sha256"}, {"weights", "weights_sha256"}, {"data", "data_sha256"}};
    const std::string manifest = (bundle.dir / "manifest.json").string() + ": artifacts." + key + ".";
    uint64_t total = 0;
    for (const auto& [file_key, digest_key] : parts) {
        const auto name = entry.find(file_key);
        if (std::string(file_key) != "path" && (name == entry.end() || name->is_null())) continue;  // no sidecar
        const std::string& file = string_field(entry, file_key, manifest.substr(0, manifest.size() - 1));
        const fs::path path = bundle.resolve(file, manifest + file_key);
        if (!verify) continue;
        const auto want = entry.find(digest_key);
        if (want == entry.end() || !want->is_string() || want->get_ref<const std::string&>().size() != 64)
            throw Error(manifest + digest_key + " is missing or not a sha256 digest, so " + file +
                        " cannot be verified (--no-verify skips the check)");
        uint64_t size = 0;
        const std::string got = sha256_file(path, &size);
        std::string expected = want->get<std::string>();
        for (char& c : expected) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (got != expected)
            throw Error((bundle.dir / file).string() + ": sha256 mismatch: manifest.json says " + expected +
                        ", the file has " + got);
        total += size;
    }
    const auto size = entry.find("size_bytes");
    if (verify && (size == entry.end() || !size->is_number_integer() || size->get<uint64_t>() != total))
        throw Error(manifest + "size_bytes is " + (size == entry.end() ? "missing" : size->dump()) + ", the files hold " +
                    std::to_string(total) + " bytes");
}

/// The model file a runner loads: resolved inside the bundle with the other files of its manifest entry
/// and, when `verify`, checked against the manifest (a file the manifest does not list cannot be
/// verified: an error). `from_cli`: it came from --model rather than from the manifest.
inline fs::path model_file(const Bundle& bundle, const std::string& model, bool from_cli, bool verify) {
    std::string key;
    const json* entry = artifact_for(bundle, model, &key);
    const std::string what = from_cli ? "--model" : (bundle.dir / "manifest.json").string() + ": artifacts." + key + ".path";
    const fs::path path = bundle.resolve(model, what);
    if (entry) check_artifact(bundle, *entry, key, verify);
    else if (verify)
        throw Error((bundle.dir / model).string() + ": not an artifact listed in manifest.json, so it cannot be "
                    "verified (--no-verify skips the check)");
    return path;
}

}  // namespace edgekit
