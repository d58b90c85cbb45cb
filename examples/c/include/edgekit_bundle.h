/* edgekit bundle reader for C: manifest.json and the reference samples in testdata/ (index.json + raw
 * little-endian C-order .bin tensors), parsed with cJSON. The surface a JNI or Swift wrapper calls. */
#ifndef EDGEKIT_BUNDLE_H
#define EDGEKIT_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EK_MAX_RANK 8
#define EK_TESTDATA_FORMAT "edgekit.testdata/1" /* testdata/index.json's "format" */

/* A named tensor in host memory, native byte order. `name` and `data` are owned. */
typedef struct {
    char* name;
    char dtype[16]; /* numpy name: float32, float16, int64, int32, uint8, bool, ... */
    int rank;       /* 0 for a scalar */
    int64_t shape[EK_MAX_RANK];
    size_t count; /* elements */
    size_t item_size;
    void* data;
} ek_tensor;

typedef struct {
    ek_tensor* inputs;
    size_t n_inputs;
    ek_tensor* outputs;
    size_t n_outputs;
} ek_sample;

typedef struct {
    char* dir;
    char* root; /* realpath(dir): every file the reader opens must resolve under it */
    cJSON* manifest;
    ek_sample* samples;
    size_t n_samples;
} ek_bundle;

/* Load `dir`/manifest.json and every testdata sample. 0 on success; otherwise -1 and one message in err
 * naming the file and field at fault. A testdata tensor is refused unless its dtype is known, its shape is
 * at most EK_MAX_RANK non-negative integers whose byte count fits a size_t, its file resolves inside the
 * bundle (ek_bundle_path) and holds exactly that many bytes. */
int ek_bundle_load(const char* dir, ek_bundle* bundle, char* err, size_t err_size);
void ek_bundle_free(ek_bundle* bundle);

/* Containment: `rel` (a path from the manifest, the testdata index or the command line) resolved inside
 * the bundle, as a malloc'ed real path to a regular file. NULL and one message "`what` 'rel': reason" in
 * err when rel is absolute, has a ".." component, cannot be opened or resolves outside the bundle (a
 * symlink). `sub` is the folder rel is relative to ("" or "testdata"). */
char* ek_bundle_path(const ek_bundle* bundle, const char* sub, const char* rel, const char* what, char* err,
                     size_t err_size);

/* Integrity: the artifacts entry whose "path" is `file` (artifacts.<key>, or an element of a list such as
 * artifacts.tensorrt), NULL if none; *key gets its key. */
const cJSON* ek_artifact_for(const ek_bundle* bundle, const char* file, const char** key);
/* The files of one artifact entry ("path", plus "weights" or "data" when present) must resolve inside the
 * bundle and, when `verify`, match its sha256 (weights_sha256, data_sha256) and size_bytes. 0 when they
 * do; otherwise -1 and one message naming the file and both digests (or both sizes). */
int ek_artifact_check(const ek_bundle* bundle, const cJSON* entry, const char* key, int verify, char* err,
                      size_t err_size);

/* The "path" (or another string field) of artifacts.<key>; NULL when the bundle has no such artifact. */
const char* ek_artifact_field(const ek_bundle* bundle, const char* key, const char* field);
/* "dir/name", malloc'ed. */
char* ek_path_join(const char* dir, const char* name);

size_t ek_dtype_size(const char* dtype); /* 0 for an unknown dtype */
int ek_dtype_is_integer(const char* dtype);
double ek_tensor_at(const ek_tensor* t, size_t i);      /* element i as a double */
int64_t ek_tensor_int_at(const ek_tensor* t, size_t i); /* element i of an integer tensor, exactly */
/* Write the printf-style message into err (truncated to err_size) and return -1: the readers' error path. */
int ek_fail(char* err, size_t err_size, const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Elements and bytes of a dtype/shape; -1 for an unknown dtype, a negative dim, a rank above EK_MAX_RANK
 * or a count that overflows size_t. */
int ek_tensor_size(const char* dtype, int rank, const int64_t* shape, size_t* count, size_t* bytes);
/* Fill name/dtype/shape/count/item_size and allocate data (ek_tensor_size's checks); 0 on success. */
int ek_tensor_init(ek_tensor* t, const char* name, const char* dtype, int rank, const int64_t* shape);
void ek_tensor_free(ek_tensor* t);

#ifdef __cplusplus
}
#endif

#endif /* EDGEKIT_BUNDLE_H */
