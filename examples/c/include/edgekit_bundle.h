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
    cJSON* manifest;
    ek_sample* samples;
    size_t n_samples;
} ek_bundle;

/* Load `dir`/manifest.json and every testdata sample. 0 on success; otherwise -1 and a message in err. */
int ek_bundle_load(const char* dir, ek_bundle* bundle, char* err, size_t err_size);
void ek_bundle_free(ek_bundle* bundle);

/* The "path" (or another string field) of artifacts.<key>; NULL when the bundle has no such artifact. */
const char* ek_artifact_field(const ek_bundle* bundle, const char* key, const char* field);
/* "dir/name", malloc'ed. */
char* ek_path_join(const char* dir, const char* name);

size_t ek_dtype_size(const char* dtype); /* 0 for an unknown dtype */
int ek_dtype_is_integer(const char* dtype);
double ek_tensor_at(const ek_tensor* t, size_t i);      /* element i as a double */
int64_t ek_tensor_int_at(const ek_tensor* t, size_t i); /* element i of an integer tensor, exactly */
/* Fill name/dtype/shape/count/item_size and allocate data; 0 on success. */
int ek_tensor_init(ek_tensor* t, const char* name, const char* dtype, int rank, const int64_t* shape);
void ek_tensor_free(ek_tensor* t);

#ifdef __cplusplus
}
#endif

#endif /* EDGEKIT_BUNDLE_H */
