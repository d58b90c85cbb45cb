/* `--bench` for the C runner (see edgekit_bench.h): options, the feed, the timing loop (the JSON document:
 * bench_report.c). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "edgekit_bench.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* edgekit/bench/stats.py: the default row budget. */
#define DEFAULT_ITERS 200
#define DEFAULT_SECONDS 20.0
#define DEFAULT_MIN_ITERS 10

void ek_bench_options_init(ek_bench_options* o) {
    memset(o, 0, sizeof *o);
    o->warmup = 10, o->iters = -1, o->threads = -1, o->sample = 0, o->seconds = -1.0;
}

static int parse_long(const char* text, long low, long* out) {
    char* end = NULL;
    const long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || v < low) return 0;
    *out = v;
    return 1;
}

int ek_bench_parse(int argc, char** argv, int* i, ek_bench_options* o, char* err, size_t err_size) {
    static const struct { const char* flag; long low; size_t offset; } ints[] = {
        {"--warmup", 0, offsetof(ek_bench_options, warmup)}, {"--iters", 1, offsetof(ek_bench_options, iters)},
        {"--threads", 1, offsetof(ek_bench_options, threads)}, {"--sample", 0, offsetof(ek_bench_options, sample)}};
    const char* arg = argv[*i];
    if (!strcmp(arg, "--bench")) return o->enabled = 1;
    const char* value = *i + 1 < argc ? argv[*i + 1] : NULL;
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; ++k) {
        if (strcmp(arg, ints[k].flag) != 0) continue;
        if (!value || !parse_long(value, ints[k].low, (long*)((char*)o + ints[k].offset)))
            return ek_fail(err, err_size, "%s: expected an integer >= %ld, got '%s'", arg, ints[k].low, value ? value : "");
        return ++*i, 1;
    }
    if (!strcmp(arg, "--seconds")) {
        char* end = NULL;
        o->seconds = value ? strtod(value, &end) : -1.0;
        if (!value || end == value || *end != '\0' || !(o->seconds > 0))
            return ek_fail(err, err_size, "--seconds: expected a positive number of seconds, got '%s'", value ? value : "");
        return ++*i, 1;
    }
    if (!strcmp(arg, "--feed")) {
        const char* eq = value ? strchr(value, '=') : NULL;
        if (!eq || eq == value || eq[1] == '\0')
            return ek_fail(err, err_size, "--feed %s: expected NAME=VALUE (a scalar input and its value)", value ? value : "");
        if (o->n_feeds == EK_MAX_FEEDS) return ek_fail(err, err_size, "--feed: at most %d of them", EK_MAX_FEEDS);
        o->feeds[o->n_feeds++] = value;
        return ++*i, 1;
    }
    return 0;
}

static const cJSON* input_spec(const ek_bundle* b, const char* name, size_t len) {
    const cJSON* spec;
    cJSON_ArrayForEach(spec, cJSON_GetObjectItemCaseSensitive(b->manifest, "inputs")) {
        const cJSON* n = cJSON_GetObjectItemCaseSensitive(spec, "name");
        if (cJSON_IsString(n) && strlen(n->valuestring) == len && !strncmp(n->valuestring, name, len)) return spec;
    }
    return NULL;
}

/* Apply "name=text" to the feed (where: how the user wrote it). */
static int apply_feed(const ek_bundle* b, ek_tensor* feed, size_t n, const char* assignment, cJSON* overrides,
                      char* err, size_t err_size) {
    const char* eq = strchr(assignment, '=');
    const size_t len = (size_t)(eq - assignment);
    const char* text = eq + 1;
    ek_tensor* t = NULL;
    for (size_t k = 0; k < n; ++k)
        if (strlen(feed[k].name) == len && !strncmp(feed[k].name, assignment, len)) t = &feed[k];
    const cJSON* spec = input_spec(b, assignment, len);
    if (!t || !spec) {
        char names[512] = "";
        for (size_t k = 0; k < n; ++k)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", k ? ", " : "", feed[k].name);
        return ek_fail(err, err_size, "--feed %.*s: the model has no input '%.*s' (inputs: %s)", (int)len, assignment,
                    (int)len, assignment, names);
    }
    if (t->count != 1)
        return ek_fail(err, err_size, "--feed %s: input '%s' has %zu elements; --feed sets scalars only", assignment,
                    t->name, t->count);
    char* end = NULL;
    const double v = strtod(text, &end);
    if (end == text || *end != '\0' || !isfinite(v)) return ek_fail(err, err_size, "--feed %s: '%s' is not a number", assignment, text);
    if (ek_dtype_is_integer(t->dtype) && v != floor(v))
        return ek_fail(err, err_size, "--feed %s: input '%s' is %s, '%s' is not an integer", assignment, t->name, t->dtype, text);
    const cJSON* range = cJSON_GetObjectItemCaseSensitive(spec, "range");
    if (cJSON_GetArraySize(range) == 2 && cJSON_IsNumber(cJSON_GetArrayItem(range, 0)) &&
        cJSON_IsNumber(cJSON_GetArrayItem(range, 1)) &&
        (v < cJSON_GetArrayItem(range, 0)->valuedouble || v > cJSON_GetArrayItem(range, 1)->valuedouble))
        return ek_fail(err, err_size, "--feed %s: outside the range [%g, %g] of input '%s'", assignment,
                    cJSON_GetArrayItem(range, 0)->valuedouble, cJSON_GetArrayItem(range, 1)->valuedouble, t->name);
    const char* d = t->dtype;
    if (!strcmp(d, "float32")) *(float*)t->data = (float)v;
    else if (!strcmp(d, "float64")) *(double*)t->data = v;
    else if (!strcmp(d, "int64")) *(int64_t*)t->data = (int64_t)v;
    else if (!strcmp(d, "int32")) *(int32_t*)t->data = (int32_t)v;
    else if (!strcmp(d, "int16")) *(int16_t*)t->data = (int16_t)v;
    else if (!strcmp(d, "int8")) *(int8_t*)t->data = (int8_t)v;
    else if (!strcmp(d, "uint8") || !strcmp(d, "bool")) *(uint8_t*)t->data = (uint8_t)(!strcmp(d, "bool") ? v != 0 : v);
    else return ek_fail(err, err_size, "--feed %s: input '%s' is %s, which --feed cannot set", assignment, t->name, d);
    cJSON_DeleteItemFromObjectCaseSensitive(overrides, t->name);
    cJSON_AddNumberToObject(overrides, t->name, ek_dtype_is_integer(d) ? (double)ek_tensor_int_at(t, 0) : ek_tensor_at(t, 0));
    return 0;
}

int ek_bench_feed(const ek_bundle* b, const ek_bench_options* o, ek_tensor** feed, size_t* n_feed, cJSON** overrides,
                  char* err, size_t err_size) {
    *feed = NULL, *n_feed = 0, *overrides = cJSON_CreateObject();
    if (b->n_samples == 0) return ek_fail(err, err_size, "%s: the bundle has no testdata sample to time", b->dir);
    if ((size_t)o->sample >= b->n_samples)
        return ek_fail(err, err_size, "--sample %ld: the bundle has %zu testdata samples (0 to %zu)", o->sample,
                    b->n_samples, b->n_samples - 1);
    const ek_sample* s = &b->samples[o->sample];
    if (!*overrides || !(*feed = calloc(s->n_inputs + 1, sizeof **feed))) return ek_fail(err, err_size, "out of memory");
    for (size_t k = 0; k < s->n_inputs; ++k, ++*n_feed) {
        const ek_tensor* in = &s->inputs[k];
        if (ek_tensor_init(&(*feed)[k], in->name, in->dtype, in->rank, in->shape) != 0) return ek_fail(err, err_size, "out of memory");
        memcpy((*feed)[k].data, in->data, in->count * in->item_size);
    }
    /* The manifest's tuned values (`edgekit tune`) first, then --feed, as `edgekit bench` does. */
    const cJSON* tuning = cJSON_GetObjectItemCaseSensitive(b->manifest, "tuning");
    const cJSON* setting = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(tuning, "chosen"), "setting");
    const cJSON* value;
    cJSON_ArrayForEach(value, setting) {
        char assignment[256];
        if (!cJSON_IsNumber(value) || !value->string) continue;
        snprintf(assignment, sizeof assignment, "%s=%.17g", value->string, value->valuedouble);
        if (apply_feed(b, *feed, *n_feed, assignment, *overrides, err, err_size) != 0) return -1;
    }
    for (size_t k = 0; k < o->n_feeds; ++k)
        if (apply_feed(b, *feed, *n_feed, o->feeds[k], *overrides, err, err_size) != 0) return -1;
    return 0;
}

void ek_bench_feed_free(ek_tensor* feed, size_t n_feed) {
    for (size_t k = 0; feed && k < n_feed; ++k) ek_tensor_free(&feed[k]);
    free(feed);
}

double ek_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void ek_bench_budget(const ek_bench_options* o, long* iters, double* seconds, long* min_iters) {
    *iters = DEFAULT_ITERS, *seconds = DEFAULT_SECONDS, *min_iters = DEFAULT_MIN_ITERS;
    if (o->iters > 0) *iters = o->iters, *seconds = -1.0, *min_iters = 1;
    else if (o->seconds > 0) *iters = -1, *seconds = o->seconds, *min_iters = 1;
}

int ek_bench_time(ek_bench_call call, void* ctx, const ek_bench_options* o, double** ms, size_t* n) {
    long iters, floor_iters;
    double seconds;
    ek_bench_budget(o, &iters, &seconds, &floor_iters);
    *ms = NULL, *n = 0;
    for (long k = 0; k < o->warmup; ++k)
        if (call(ctx) != 0) return -1;
    size_t capacity = 0;
    const double deadline = ek_now_ms() + (seconds > 0 ? seconds * 1e3 : 0.0);
    while (iters < 0 || (long)*n < iters) {
        if (seconds > 0 && (long)*n >= floor_iters && ek_now_ms() >= deadline) break;
        if (*n == capacity) {
            double* grown = realloc(*ms, (capacity = capacity ? 2 * capacity : 256) * sizeof **ms);
            if (!grown) return -1;
            *ms = grown;
        }
        const double start = ek_now_ms();
        if (call(ctx) != 0) return -1;
        (*ms)[(*n)++] = ek_now_ms() - start;
    }
    return 0;
}
