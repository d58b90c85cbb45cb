/* edgekit bundle reader (see edgekit_bundle.h): cJSON for manifest.json and testdata/index.json, stdio
 * for the raw .bin tensors. */
#include "edgekit_bundle.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char* err, size_t err_size, const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(err, err_size, fmt, args);
    va_end(args);
    return -1;
}

char* ek_path_join(const char* dir, const char* name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char* out = malloc(n);
    if (out) snprintf(out, n, "%s/%s", dir, name);
    return out;
}

size_t ek_dtype_size(const char* dtype) {
    static const struct { const char* name; size_t size; } sizes[] = {
        {"float32", 4}, {"float16", 2}, {"float64", 8}, {"int64", 8}, {"int32", 4}, {"int16", 2},
        {"int8", 1},    {"uint8", 1},   {"uint16", 2},  {"uint32", 4}, {"uint64", 8}, {"bool", 1}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i)
        if (strcmp(dtype, sizes[i].name) == 0) return sizes[i].size;
    return 0;
}

int ek_dtype_is_integer(const char* dtype) {
    return strncmp(dtype, "int", 3) == 0 || strncmp(dtype, "uint", 4) == 0 || strcmp(dtype, "bool") == 0;
}

static double half_to_double(uint16_t h) {
    int exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
    double sign = (h & 0x8000) ? -1.0 : 1.0;
    if (exponent == 0) return sign * ldexp(mantissa, -24);
    if (exponent == 31) return mantissa ? NAN : sign * INFINITY;
    return sign * ldexp(mantissa + 1024, exponent - 25);
}

#define EK_LOAD(type, p) (*(const type*)(p)) /* data is malloc'ed: aligned for every dtype */

double ek_tensor_at(const ek_tensor* t, size_t i) {
    const char* p = (const char*)t->data + i * t->item_size;
    const char* d = t->dtype;
    if (!strcmp(d, "float32")) return EK_LOAD(float, p);
    if (!strcmp(d, "float64")) return EK_LOAD(double, p);
    if (!strcmp(d, "float16")) return half_to_double(EK_LOAD(uint16_t, p));
    if (!strcmp(d, "int64")) return (double)EK_LOAD(int64_t, p);
    if (!strcmp(d, "int32")) return EK_LOAD(int32_t, p);
    if (!strcmp(d, "int16")) return EK_LOAD(int16_t, p);
    if (!strcmp(d, "int8")) return EK_LOAD(int8_t, p);
    if (!strcmp(d, "uint64")) return (double)EK_LOAD(uint64_t, p);
    if (!strcmp(d, "uint32")) return EK_LOAD(uint32_t, p);
    if (!strcmp(d, "uint16")) return EK_LOAD(uint16_t, p);
    return EK_LOAD(uint8_t, p); /* uint8, bool */
}

int64_t ek_tensor_int_at(const ek_tensor* t, size_t i) {
    const char* p = (const char*)t->data + i * t->item_size;
    if (!strcmp(t->dtype, "int64")) return EK_LOAD(int64_t, p);
    if (!strcmp(t->dtype, "uint64")) return (int64_t)EK_LOAD(uint64_t, p);
    return (int64_t)ek_tensor_at(t, i);
}

int ek_tensor_init(ek_tensor* t, const char* name, const char* dtype, int rank, const int64_t* shape) {
    memset(t, 0, sizeof *t);
    if (rank < 0 || rank > EK_MAX_RANK || strlen(dtype) >= sizeof t->dtype) return -1;
    t->item_size = ek_dtype_size(dtype);
    if (!t->item_size) return -1;
    strcpy(t->dtype, dtype);
    t->rank = rank;
    t->count = 1;
    for (int k = 0; k < rank; ++k) t->shape[k] = shape[k], t->count *= (size_t)shape[k];
    t->name = malloc(strlen(name) + 1);
    t->data = malloc(t->count * t->item_size + 1); /* +1: never malloc(0) */
    if (!t->name || !t->data) return -1;
    strcpy(t->name, name);
    return 0;
}

void ek_tensor_free(ek_tensor* t) {
    free(t->name);
    free(t->data);
    t->name = NULL, t->data = NULL;
}

static int host_is_little_endian(void) {
    const uint16_t probe = 1;
    return *(const uint8_t*)&probe == 1;
}

static char* read_text(const char* path) {
    FILE* f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char* text = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (text && fread(text, 1, (size_t)n, f) == (size_t)n) text[n] = '\0';
    else free(text), text = NULL;
    fclose(f);
    return text;
}

static cJSON* read_json(const char* path, char* err, size_t err_size) {
    char* text = read_text(path);
    if (!text) return fail(err, err_size, "%s: cannot open", path), NULL;
    cJSON* json = cJSON_Parse(text);
    free(text);
    if (!json) fail(err, err_size, "%s: invalid JSON", path);
    return json;
}

/* One index.json entry {"file", "shape", "dtype"} -> tensor. */
static int read_tensor(const char* folder, const cJSON* meta, ek_tensor* t, char* err, size_t err_size) {
    const cJSON* file = cJSON_GetObjectItemCaseSensitive(meta, "file");
    const cJSON* dtype = cJSON_GetObjectItemCaseSensitive(meta, "dtype");
    const cJSON* shape = cJSON_GetObjectItemCaseSensitive(meta, "shape");
    if (!cJSON_IsString(file) || !cJSON_IsString(dtype) || !cJSON_IsArray(shape))
        return fail(err, err_size, "%s/index.json: tensor '%s' lacks file/dtype/shape", folder, meta->string);
    int64_t dims[EK_MAX_RANK];
    int rank = 0;
    const cJSON* d;
    cJSON_ArrayForEach(d, shape) {
        if (rank == EK_MAX_RANK) return fail(err, err_size, "tensor '%s': rank > %d", meta->string, EK_MAX_RANK);
        dims[rank++] = (int64_t)d->valuedouble;
    }
    if (ek_tensor_init(t, meta->string, dtype->valuestring, rank, dims) != 0)
        return fail(err, err_size, "tensor '%s': unsupported dtype %s", meta->string, dtype->valuestring);
    char* path = ek_path_join(folder, file->valuestring);
    FILE* f = path ? fopen(path, "rb") : NULL;
    size_t bytes = t->count * t->item_size, got = 0;
    int extra = 0;
    if (f) {
        got = fread(t->data, 1, bytes, f);
        extra = fgetc(f) != EOF;
        fclose(f);
    }
    int rc = 0;
    if (!f) rc = fail(err, err_size, "%s: cannot open", path);
    else if (got != bytes || extra) rc = fail(err, err_size, "%s: size does not match %s (%zu bytes)", path, t->dtype, bytes);
    free(path);
    if (rc == 0 && !host_is_little_endian()) /* the files are little-endian */
        for (size_t i = 0; i < t->count; ++i) {
            unsigned char* e = (unsigned char*)t->data + i * t->item_size;
            for (size_t a = 0, b = t->item_size - 1; a < b; ++a, --b) {
                unsigned char tmp = e[a];
                e[a] = e[b], e[b] = tmp;
            }
        }
    return rc;
}

static int read_tensors(const char* folder, const cJSON* group, ek_tensor** out, size_t* n, char* err, size_t err_size) {
    *n = (size_t)cJSON_GetArraySize(group);
    *out = calloc(*n + 1, sizeof **out);
    if (!*out) return fail(err, err_size, "out of memory");
    size_t i = 0;
    const cJSON* meta;
    cJSON_ArrayForEach(meta, group) {
        if (read_tensor(folder, meta, &(*out)[i++], err, err_size) != 0) return -1;
    }
    return 0;
}

int ek_bundle_load(const char* dir, ek_bundle* bundle, char* err, size_t err_size) {
    memset(bundle, 0, sizeof *bundle);
    bundle->dir = malloc(strlen(dir) + 1);
    strcpy(bundle->dir, dir);
    char* path = ek_path_join(dir, "manifest.json");
    bundle->manifest = read_json(path, err, err_size);
    free(path);
    if (!bundle->manifest) return -1;
    const cJSON* schema = cJSON_GetObjectItemCaseSensitive(bundle->manifest, "schema");
    if (!cJSON_IsString(schema) || strcmp(schema->valuestring, "edgekit.bundle/1") != 0)
        return fail(err, err_size, "%s/manifest.json: not an edgekit.bundle/1 manifest", dir);

    char* folder = ek_path_join(dir, "testdata");
    char* index_path = ek_path_join(folder, "index.json");
    FILE* probe = fopen(index_path, "rb");
    int rc = 0;
    if (probe) { /* a bundle exported without reference data has no testdata/ */
        fclose(probe);
        cJSON* index = read_json(index_path, err, err_size);
        const cJSON* samples = index ? cJSON_GetObjectItemCaseSensitive(index, "samples") : NULL;
        const cJSON* format = index ? cJSON_GetObjectItemCaseSensitive(index, "format") : NULL;
        if (!index) rc = -1;
        else if (!cJSON_IsString(format) || strcmp(format->valuestring, "edgekit.testdata/1") != 0 || !cJSON_IsArray(samples))
            rc = fail(err, err_size, "%s: unknown testdata format", index_path);
        else {
            bundle->samples = calloc((size_t)cJSON_GetArraySize(samples) + 1, sizeof *bundle->samples);
            const cJSON* entry;
            cJSON_ArrayForEach(entry, samples) {
                ek_sample* s = &bundle->samples[bundle->n_samples++];
                if (read_tensors(folder, cJSON_GetObjectItemCaseSensitive(entry, "inputs"), &s->inputs, &s->n_inputs, err, err_size) ||
                    read_tensors(folder, cJSON_GetObjectItemCaseSensitive(entry, "outputs"), &s->outputs, &s->n_outputs, err, err_size)) {
                    rc = -1;
                    break;
                }
            }
        }
        cJSON_Delete(index);
    }
    free(index_path);
    free(folder);
    return rc;
}

void ek_bundle_free(ek_bundle* bundle) {
    for (size_t i = 0; i < bundle->n_samples; ++i) {
        ek_sample* s = &bundle->samples[i];
        for (size_t k = 0; s->inputs && k < s->n_inputs; ++k) ek_tensor_free(&s->inputs[k]);
        for (size_t k = 0; s->outputs && k < s->n_outputs; ++k) ek_tensor_free(&s->outputs[k]);
        free(s->inputs);
        free(s->outputs);
    }
    free(bundle->samples);
    cJSON_Delete(bundle->manifest);
    free(bundle->dir);
    memset(bundle, 0, sizeof *bundle);
}

const char* ek_artifact_field(const ek_bundle* bundle, const char* key, const char* field) {
    const cJSON* artifacts = cJSON_GetObjectItemCaseSensitive(bundle->manifest, "artifacts");
    const cJSON* entry = cJSON_GetObjectItemCaseSensitive(artifacts, key);
    const cJSON* value = cJSON_GetObjectItemCaseSensitive(entry, field);
    return cJSON_IsString(value) ? value->valuestring : NULL;
}
