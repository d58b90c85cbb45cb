/* Containment and integrity for the C bundle reader (see edgekit_bundle.h, DESIGN.md §8): every path read
 * from a bundle must resolve inside it, and the model files a runner loads must match the manifest's sha256
 * and size_bytes. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "edgekit_bundle.h"
#include "edgekit_sha256.h"

static int has_dotdot(const char* rel) {
    for (const char* p = rel; *p;) {
        const size_t n = strcspn(p, "/\\");
        if (n == 2 && p[0] == '.' && p[1] == '.') return 1;
        p += n + (p[n] != '\0');
    }
    return 0;
}

char* ek_bundle_path(const ek_bundle* bundle, const char* sub, const char* rel, const char* what, char* err,
                     size_t err_size) {
    if (!rel || !*rel) return ek_fail(err, err_size, "%s: empty path", what), NULL;
    /* Refused before touching the file system, whatever exists there. */
    if (rel[0] == '/' || rel[0] == '\\' || (isalpha((unsigned char)rel[0]) && rel[1] == ':'))
        return ek_fail(err, err_size, "%s '%.200s': absolute path refused (bundle paths are relative)", what, rel), NULL;
    if (has_dotdot(rel))
        return ek_fail(err, err_size, "%s '%.200s': '..' refused (bundle paths stay inside the bundle)", what, rel), NULL;
    char* folder = sub && *sub ? ek_path_join(bundle->root, sub) : NULL;
    char* joined = ek_path_join(folder ? folder : bundle->root, rel);
    free(folder);
    if (!joined) return ek_fail(err, err_size, "out of memory"), NULL;
    char* real = realpath(joined, NULL); /* follows every symlink on the way */
    const int error = errno;
    free(joined);
    if (!real) return ek_fail(err, err_size, "%s '%.200s': cannot open (%s)", what, rel, strerror(error)), NULL;
    const size_t n = strlen(bundle->root);
    const int inside = strncmp(real, bundle->root, n) == 0 && (real[n] == '/' || (n == 1 && real[n] != '\0'));
    struct stat st;
    if (!inside)
        ek_fail(err, err_size, "%s '%.200s': resolves to %.200s, outside the bundle %.200s (a symlink?)", what, rel, real,
             bundle->root);
    else if (stat(real, &st) != 0 || !S_ISREG(st.st_mode))
        ek_fail(err, err_size, "%s '%.200s': not a regular file", what, rel);
    else
        return real;
    free(real);
    return NULL;
}

static const cJSON* field(const cJSON* entry, const char* name) {
    return cJSON_GetObjectItemCaseSensitive(entry, name);
}

static int is_entry_for(const cJSON* entry, const char* file) {
    const cJSON* path = field(entry, "path");
    return cJSON_IsObject(entry) && cJSON_IsString(path) && strcmp(path->valuestring, file) == 0;
}

const cJSON* ek_artifact_for(const ek_bundle* bundle, const char* file, const char** key) {
    const cJSON* artifact;
    cJSON_ArrayForEach(artifact, field(bundle->manifest, "artifacts")) {
        const cJSON* found = is_entry_for(artifact, file) ? artifact : NULL;
        const cJSON* element;
        if (cJSON_IsArray(artifact)) {
            cJSON_ArrayForEach(element, artifact) {
                if (!found && is_entry_for(element, file)) found = element;
            }
        }
        if (found) {
            if (key) *key = artifact->string;
            return found;
        }
    }
    return NULL;
}

static int same_digest(const char* hex, const char* other) { /* hex is lowercase */
    for (; *hex && tolower((unsigned char)*other) == *hex; ++hex, ++other) continue;
    return *hex == '\0' && *other == '\0';
}

int ek_artifact_check(const ek_bundle* bundle, const cJSON* entry, const char* key, int verify, char* err,
                      size_t err_size) {
    static const struct { const char *file, *digest; } parts[] = {
        {"path", "sha256"}, {"weights", "weights_sha256"}, {"data", "data_sha256"}};
    char where[512], got[65];
    uint64_t total = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; ++i) {
        const cJSON* name = field(entry, parts[i].file);
        if (i > 0 && (!name || cJSON_IsNull(name))) continue; /* no sidecar file */
        snprintf(where, sizeof where, "%s/manifest.json: artifacts.%s.%s", bundle->dir, key, parts[i].file);
        if (!cJSON_IsString(name)) return ek_fail(err, err_size, "%s is not a string", where);
        char* path = ek_bundle_path(bundle, "", name->valuestring, where, err, err_size);
        if (!path) return -1;
        const cJSON* want = field(entry, parts[i].digest);
        uint64_t size = 0;
        int rc = 0;
        if (!verify) { /* containment only */
        } else if (!cJSON_IsString(want) || strlen(want->valuestring) != 64)
            rc = ek_fail(err, err_size, "%s/manifest.json: artifacts.%s.%s is missing or not a sha256 digest, so %s cannot "
                      "be verified (--no-verify skips the check)", bundle->dir, key, parts[i].digest, name->valuestring);
        else if (ek_sha256_file(path, got, &size) != 0)
            rc = ek_fail(err, err_size, "%s/%s: cannot read", bundle->dir, name->valuestring);
        else if (!same_digest(got, want->valuestring))
            rc = ek_fail(err, err_size, "%s/%s: sha256 mismatch: manifest.json says %s, the file has %s", bundle->dir,
                      name->valuestring, want->valuestring, got);
        free(path);
        if (rc != 0) return rc;
        total += size;
    }
    const cJSON* size = field(entry, "size_bytes");
    if (verify && (!cJSON_IsNumber(size) || size->valuedouble != (double)total))
        return ek_fail(err, err_size, "%s/manifest.json: artifacts.%s.size_bytes is %.17g, the files hold %llu bytes",
                    bundle->dir, key, cJSON_IsNumber(size) ? size->valuedouble : -1.0, (unsigned long long)total);
    return 0;
}
