/* edgekit bundle reader (see edgekit_bundle.h): cJSON for manifest.json and testdata/index.json, stdio
 * for the raw .bin tensors. Everything in those files is untrusted: types, dims and byte counts are checked
 * before use, and every file goes through ek_bundle_path (containment, in integrity.c). */
#define _XOPEN_SOURCE 700 /* realpath, lstat */
#include "edgekit_bundle.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int ek_fail(char* err, size_t err_size, const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(err, err_size, fmt, args);
    va_end(args);
    return -1;
}

char* ek_path_join(const char* dir, const char* name) {
    const size_t n = strlen(dir) + strlen(name) + 2;
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

int ek_tensor_size(const char* dtype, int rank, const int64_t* shape, size_t* count, size_t* bytes) {
    const size_t item = ek_dtype_size(dtype);
    if (!item || rank < 0 || rank > EK_MAX_RANK) return -1;
    size_t n = 1;
    for (int k = 0; k < rank; ++k) {
        if (shape[k] < 0 || (uint64_t)shape[k] > SIZE_MAX) return -1;
        const size_t d = (size_t)shape[k];
        if (d != 0 && n > SIZE_MAX / d) return -1;
        n *= d;
    }
    if (n > (SIZE_MAX - 1) / item) return -1; /* ek_tensor_init allocates one more byte */
    *count = n, *bytes = n * item;
    return 0;
}

int ek_tensor_init(ek_tensor* t, const char* name, const char* dtype, int rank, const int64_t* shape) {
    memset(t, 0, sizeof *t);
    size_t bytes = 0;
    if (strlen(dtype) >= sizeof t->dtype || ek_tensor_size(dtype, rank, shape, &t->count, &bytes) != 0) return -1;
    t->item_size = ek_dtype_size(dtype);
    strcpy(t->dtype, dtype);
    t->rank = rank;
    for (int k = 0; k < rank; ++k) t->shape[k] = shape[k];
    t->name = malloc(strlen(name) + 1);
    t->data = malloc(bytes + 1); /* +1: never malloc(0) */
    if (!t->name || !t->data) return ek_tensor_free(t), -1;
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
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    char* text = n >= 0 && fseek(f, 0, SEEK_SET) == 0 ? malloc((size_t)n + 1) : NULL;
    if (text && fread(text, 1, (size_t)n, f) == (size_t)n) text[n] = '\0';
    else free(text), text = NULL;
    fclose(f);
    return text;
}

/* `rel` (inside the bundle) parsed as JSON; `what` names it in errors. */
static cJSON* read_json(const ek_bundle* b, const char* rel, const char* what, char* err, size_t err_size) {
    char* path = ek_bundle_path(b, "", rel, what, err, err_size);
    if (!path) return NULL;
    char* text = read_text(path);
    free(path);
    if (!text) return ek_fail(err, err_size, "%s: cannot read", what), NULL;
    cJSON* json = cJSON_Parse(text);
    free(text);
    if (!json) ek_fail(err, err_size, "%s: invalid JSON", what);
    return json;
}

/* Any dim above 2^53 would have lost digits in cJSON's double; no real tensor is that large anyway. */
static const double kMaxDim = 9007199254740992.0;

static void shape_text(const int64_t* dims, int rank, char* out, size_t size) {
    size_t at = (size_t)snprintf(out, size, "[");
    for (int k = 0; k < rank && at < size; ++k)
        at += (size_t)snprintf(out + at, size - at, "%s%lld", k ? "," : "", (long long)dims[k]);
    if (at < size) snprintf(out + at, size - at, "]");
}

/* One index.json entry {"file", "shape", "dtype"} -> tensor; `where` names the entry in errors. */
static int read_tensor(const ek_bundle* b, const char* where, const cJSON* meta, ek_tensor* t, char* err,
                       size_t err_size) {
    const cJSON* file = cJSON_GetObjectItemCaseSensitive(meta, "file");
    const cJSON* dtype = cJSON_GetObjectItemCaseSensitive(meta, "dtype");
    const cJSON* shape = cJSON_GetObjectItemCaseSensitive(meta, "shape");
    if (!cJSON_IsObject(meta) || !cJSON_IsString(file) || !cJSON_IsString(dtype) || !cJSON_IsArray(shape))
        return ek_fail(err, err_size, "%s: lacks file/dtype (strings) or shape (an array)", where);
    if (!ek_dtype_size(dtype->valuestring))
        return ek_fail(err, err_size, "%s: unsupported dtype '%.32s'", where, dtype->valuestring);
    int64_t dims[EK_MAX_RANK];
    int rank = 0;
    const cJSON* d;
    cJSON_ArrayForEach(d, shape) {
        if (rank == EK_MAX_RANK) return ek_fail(err, err_size, "%s: shape has rank > %d", where, EK_MAX_RANK);
        if (!cJSON_IsNumber(d)) return ek_fail(err, err_size, "%s: shape[%d] is not a number", where, rank);
        const double v = d->valuedouble;
        if (v < 0) return ek_fail(err, err_size, "%s: shape[%d] = %.17g is negative", where, rank, v);
        if (!(v <= kMaxDim) || v != floor(v))
            return ek_fail(err, err_size, "%s: shape[%d] = %.17g is out of range (an integer in [0, 2^53])", where, rank, v);
        dims[rank++] = (int64_t)v;
    }
    char dims_text[200];
    shape_text(dims, rank, dims_text, sizeof dims_text);
    size_t count = 0, bytes = 0;
    if (ek_tensor_size(dtype->valuestring, rank, dims, &count, &bytes) != 0)
        return ek_fail(err, err_size, "%s: shape %s of %s overflows the byte count", where, dims_text, dtype->valuestring);

    char what[600];
    snprintf(what, sizeof what, "%s file", where);
    char* path = ek_bundle_path(b, "testdata", file->valuestring, what, err, err_size);
    if (!path) return -1;
    FILE* f = fopen(path, "rb");
    free(path);
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        if (f) fclose(f);
        return ek_fail(err, err_size, "%s/testdata/%s: cannot open", b->dir, file->valuestring);
    }
    int rc = 0;
    /* Checked before allocating: a shape cannot make the reader allocate more than the file holds. */
    if ((uint64_t)st.st_size != (uint64_t)bytes)
        rc = ek_fail(err, err_size, "%s/testdata/%s: size does not match %s%s: %zu bytes expected, the file has %lld",
                  b->dir, file->valuestring, dtype->valuestring, dims_text, bytes, (long long)st.st_size);
    else if (ek_tensor_init(t, meta->string, dtype->valuestring, rank, dims) != 0)
        rc = ek_fail(err, err_size, "%s: out of memory (%zu bytes)", where, bytes);
    else if (fread(t->data, 1, bytes, f) != bytes)
        rc = ek_fail(err, err_size, "%s/testdata/%s: short read", b->dir, file->valuestring);
    fclose(f);
    if (rc == 0 && !host_is_little_endian()) /* the files are little-endian */
        for (size_t i = 0; i < t->count; ++i) {
            unsigned char* e = (unsigned char*)t->data + i * t->item_size;
            for (size_t a = 0, z = t->item_size - 1; a < z; ++a, --z) {
                unsigned char tmp = e[a];
                e[a] = e[z], e[z] = tmp;
            }
        }
    return rc;
}

/* samples[i].inputs or .outputs: an object name -> tensor entry. */
static int read_tensors(const ek_bundle* b, size_t sample, const char* role, const cJSON* group, ek_tensor** out,
                        size_t* n, char* err, size_t err_size) {
    char where[512];
    if (!cJSON_IsObject(group))
        return ek_fail(err, err_size, "%s/testdata/index.json: samples[%zu].%s is not an object", b->dir, sample, role);
    *out = calloc((size_t)cJSON_GetArraySize(group) + 1, sizeof **out);
    if (!*out) return ek_fail(err, err_size, "out of memory");
    const cJSON* meta;
    cJSON_ArrayForEach(meta, group) {
        snprintf(where, sizeof where, "%s/testdata/index.json: samples[%zu].%s '%.64s'", b->dir, sample, role, meta->string);
        if (read_tensor(b, where, meta, &(*out)[(*n)++], err, err_size) != 0) return -1;
    }
    return 0;
}

static int read_testdata(ek_bundle* bundle, char* err, size_t err_size) {
    char what[512];
    snprintf(what, sizeof what, "%s/testdata/index.json", bundle->dir);
    cJSON* index = read_json(bundle, "testdata/index.json", what, err, err_size);
    const cJSON* samples = cJSON_GetObjectItemCaseSensitive(index, "samples");
    const cJSON* format = cJSON_GetObjectItemCaseSensitive(index, "format");
    int rc = 0;
    if (!index) rc = -1;
    else if (!cJSON_IsString(format) || strcmp(format->valuestring, EK_TESTDATA_FORMAT) != 0 || !cJSON_IsArray(samples))
        rc = ek_fail(err, err_size, "%s: unknown testdata format", what);
    else if (!(bundle->samples = calloc((size_t)cJSON_GetArraySize(samples) + 1, sizeof *bundle->samples)))
        rc = ek_fail(err, err_size, "out of memory");
    else {
        const cJSON* entry;
        cJSON_ArrayForEach(entry, samples) {
            const size_t i = bundle->n_samples++;
            ek_sample* s = &bundle->samples[i];
            if (read_tensors(bundle, i, "inputs", cJSON_GetObjectItemCaseSensitive(entry, "inputs"), &s->inputs,
                             &s->n_inputs, err, err_size) ||
                read_tensors(bundle, i, "outputs", cJSON_GetObjectItemCaseSensitive(entry, "outputs"), &s->outputs,
                             &s->n_outputs, err, err_size)) {
                rc = -1;
                break;
            }
        }
    }
    cJSON_Delete(index);
    return rc;
}

int ek_bundle_load(const char* dir, ek_bundle* bundle, char* err, size_t err_size) {
    memset(bundle, 0, sizeof *bundle);
    char what[512];
    snprintf(what, sizeof what, "%s/manifest.json", dir);
    if (!(bundle->dir = malloc(strlen(dir) + 1))) return ek_fail(err, err_size, "out of memory");
    strcpy(bundle->dir, dir);
    if (!(bundle->root = realpath(dir, NULL))) return ek_fail(err, err_size, "%s: cannot open (%s)", what, strerror(errno));
    if (!(bundle->manifest = read_json(bundle, "manifest.json", what, err, err_size))) return -1;
    const cJSON* schema = cJSON_GetObjectItemCaseSensitive(bundle->manifest, "schema");
    if (!cJSON_IsString(schema) || strcmp(schema->valuestring, "edgekit.bundle/1") != 0)
        return ek_fail(err, err_size, "%s: not an edgekit.bundle/1 manifest", what);
    struct stat st;
    char* index = ek_path_join(dir, "testdata/index.json");
    const int has_testdata = index && lstat(index, &st) == 0; /* a bundle exported without reference data has none */
    free(index);
    return has_testdata ? read_testdata(bundle, err, err_size) : 0;
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
    free(bundle->root);
    memset(bundle, 0, sizeof *bundle);
}

const char* ek_artifact_field(const ek_bundle* bundle, const char* key, const char* field) {
    const cJSON* artifacts = cJSON_GetObjectItemCaseSensitive(bundle->manifest, "artifacts");
    const cJSON* entry = cJSON_GetObjectItemCaseSensitive(artifacts, key);
    const cJSON* value = cJSON_GetObjectItemCaseSensitive(entry, field);
    return cJSON_IsString(value) ? value->valuestring : NULL;
}
