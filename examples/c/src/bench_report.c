/* `--bench`'s JSON document (see edgekit_bench.h): statistics, the `edgekit bench --json` row, the document. */
#define _POSIX_C_SOURCE 200809L /* getpid */
#include "edgekit_bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

double ek_proc_status_mb(const char* key) {
    FILE* f = fopen("/proc/self/status", "r");
    char line[256];
    double mb = NAN;
    const size_t len = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, len) && line[len] == ':') mb = strtod(line + len + 1, NULL) / 1024.0;
    if (f) fclose(f);
    return mb;
}

void ek_bench_describe_artifact(const ek_bundle* b, const char* file, ek_bench_run* run) {
    const char* key = NULL;
    const cJSON* entry = ek_artifact_for(b, file, &key);
    const cJSON* size = cJSON_GetObjectItemCaseSensitive(entry, "size_bytes");
    const cJSON* precision = cJSON_GetObjectItemCaseSensitive(entry, "precision");
    run->artifact = file;
    run->size_mb = cJSON_IsNumber(size) ? size->valuedouble / 1e6 : NAN;
    run->precision = cJSON_IsString(precision) ? precision->valuestring : "fp32";
}

static int by_value(const void* a, const void* b) {
    const double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

/* numpy.percentile's default: linear interpolation between the closest ranks of sorted data. */
static double percentile(const double* sorted, size_t n, double q) {
    const double at = q / 100.0 * (double)(n - 1);
    const size_t lo = (size_t)floor(at), hi = (size_t)ceil(at);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - (double)lo);
}

static void add_number_or_null(cJSON* object, const char* key, double value) {
    if (isfinite(value)) cJSON_AddNumberToObject(object, key, value);
    else cJSON_AddNullToObject(object, key);
}

/* One `edgekit bench --json` row (edgekit/bench/stats.py, BenchResult) plus "api". */
static cJSON* bench_row(const ek_bench_run* run) {
    cJSON* row = cJSON_CreateObject();
    double* sorted = malloc((run->n + 1) * sizeof *sorted);
    double sum = 0.0, sq = 0.0;
    for (size_t k = 0; k < run->n; ++k) sum += run->ms[k];
    const double mean = run->n ? sum / (double)run->n : NAN;
    for (size_t k = 0; k < run->n; ++k) sq += (run->ms[k] - mean) * (run->ms[k] - mean);
    cJSON_AddStringToObject(row, "runtime", run->runtime);
    cJSON_AddStringToObject(row, "status", sorted && run->n ? "ok" : "failed");
    cJSON_AddStringToObject(row, "precision", run->precision);
    if (sorted && run->n) cJSON_AddNullToObject(row, "reason");
    else cJSON_AddStringToObject(row, "reason", "no timed calls (out of memory?)");
    cJSON_AddNumberToObject(row, "iters", (double)run->n);
    cJSON_AddNumberToObject(row, "load_ms", run->load_ms);
    cJSON* latency = cJSON_AddObjectToObject(row, "latency_ms");
    if (sorted && run->n) {
        memcpy(sorted, run->ms, run->n * sizeof *sorted);
        qsort(sorted, run->n, sizeof *sorted, by_value);
        cJSON_AddNumberToObject(latency, "min", sorted[0]);
        cJSON_AddNumberToObject(latency, "p50", percentile(sorted, run->n, 50));
        cJSON_AddNumberToObject(latency, "p90", percentile(sorted, run->n, 90));
        cJSON_AddNumberToObject(latency, "p99", percentile(sorted, run->n, 99));
        cJSON_AddNumberToObject(latency, "mean", mean);
        cJSON_AddNumberToObject(latency, "max", sorted[run->n - 1]);
        cJSON_AddNumberToObject(latency, "stdev", run->n > 1 ? sqrt(sq / (double)run->n) : 0.0);
    }
    free(sorted);
    add_number_or_null(row, "throughput", run->n ? 1000.0 / mean : NAN);
    cJSON_AddNullToObject(row, "vs_torch");
    cJSON_AddStringToObject(row, "mode", "latency");
    cJSON_AddNumberToObject(row, "batch", 1);
    cJSON_AddNumberToObject(row, "requests", 1);
    add_number_or_null(row, "size_mb", run->size_mb);
    cJSON_AddNullToObject(row, "import_ms");
    add_number_or_null(row, "peak_rss_mb", ek_proc_status_mb("VmHWM"));
    add_number_or_null(row, "rss_before_load_mb", run->rss_before_load_mb);
    cJSON_AddNumberToObject(row, "pid", (double)getpid());
    cJSON_AddStringToObject(row, "clock", "clock_monotonic");
    cJSON_AddNullToObject(row, "validation");
    cJSON_AddStringToObject(row, "runner", run->runner);
    cJSON_AddStringToObject(row, "api", run->api);
    cJSON_AddStringToObject(row, "device", run->device);
    cJSON_AddStringToObject(row, "artifact", run->artifact);
    return row;
}

void ek_bench_print(const ek_bundle* b, const char* bundle_arg, const ek_bench_options* o, int verified,
                    const ek_tensor* feed, size_t n_feed, const cJSON* overrides, const ek_report* check,
                    const ek_bench_run* run, FILE* out) {
    cJSON* doc = cJSON_CreateObject();
    const cJSON* spec = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(b->manifest, "source"), "spec");
    long iters, min_iters;
    double seconds;
    ek_bench_budget(o, &iters, &seconds, &min_iters);
    cJSON_AddStringToObject(doc, "bundle", bundle_arg);
    if (cJSON_IsString(spec)) cJSON_AddStringToObject(doc, "source", spec->valuestring);
    else cJSON_AddNullToObject(doc, "source");
    cJSON_AddItemToObject(doc, "feed", cJSON_Duplicate(overrides, 1));
    cJSON_AddNumberToObject(doc, "sample", (double)o->sample);
    cJSON* inputs = cJSON_AddObjectToObject(doc, "inputs");
    for (size_t k = 0; k < n_feed; ++k) {
        cJSON* entry = cJSON_AddObjectToObject(inputs, feed[k].name);
        cJSON* shape = cJSON_AddArrayToObject(entry, "shape");
        for (int d = 0; d < feed[k].rank; ++d) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)feed[k].shape[d]));
        cJSON_AddStringToObject(entry, "dtype", feed[k].dtype);
    }
    cJSON* settings = cJSON_AddObjectToObject(doc, "settings");
    cJSON_AddNumberToObject(settings, "warmup", (double)o->warmup);
    add_number_or_null(settings, "iters", iters > 0 ? (double)iters : NAN);
    add_number_or_null(settings, "seconds", seconds > 0 ? seconds : NAN);
    add_number_or_null(settings, "threads", o->threads > 0 ? (double)o->threads : NAN);
    cJSON_AddNumberToObject(settings, "batch", 1);
    cJSON_AddStringToObject(settings, "device", run->device);
    cJSON_AddNumberToObject(settings, "min_iters", (double)min_iters);
    cJSON_AddBoolToObject(settings, "verified", verified);
    cJSON_AddNumberToObject(doc, "pid", (double)getpid());
    cJSON_AddStringToObject(doc, "api", run->api);
    cJSON_AddStringToObject(doc, "runtime_version", run->version);
    cJSON_AddItemToObject(doc, "check", ek_report_json(check));
    cJSON_AddItemToArray(cJSON_AddArrayToObject(doc, "results"), bench_row(run));
    char* text = cJSON_PrintUnformatted(doc);
    fprintf(out, "%s\n", text);
    fflush(out);
    cJSON_free(text);
    cJSON_Delete(doc);
}
