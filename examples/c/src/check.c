/* Output comparison and the JSON report line (see edgekit_check.h). */
#include "edgekit_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ek_report_init(ek_report* report) {
    memset(report, 0, sizeof *report);
    report->tol.atol = 1e-4, report->tol.rtol = 1e-3;
    report->failures = cJSON_CreateArray();
}

void ek_report_free(ek_report* report) {
    for (size_t i = 0; i < report->n_paths; ++i) free(report->paths[i].name), free(report->paths[i].values);
    cJSON_Delete(report->failures);
    report->failures = NULL, report->n_paths = 0;
}

static void add_path(ek_report* report, const char* name, int64_t value) {
    ek_path* path = NULL;
    for (size_t i = 0; i < report->n_paths && !path; ++i)
        if (!strcmp(report->paths[i].name, name)) path = &report->paths[i];
    if (!path) {
        char* copy = malloc(strlen(name) + 1);
        if (report->n_paths == EK_MAX_PATHS || !copy) {
            free(copy);
            return;
        }
        path = &report->paths[report->n_paths++];
        path->name = strcpy(copy, name);
    }
    size_t at = 0;
    while (at < path->n && path->values[at] < value) ++at;
    if (at < path->n && path->values[at] == value) return;
    int64_t* grown = realloc(path->values, (path->n + 1) * sizeof *path->values);
    if (!grown) return; /* the value goes unrecorded; the comparison itself is unaffected */
    path->values = grown;
    memmove(path->values + at + 1, path->values + at, (path->n - at) * sizeof *path->values);
    path->values[at] = value;
    path->n++;
}

void ek_report_paths(ek_report* report, const ek_tensor* tensors, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (tensors[i].rank == 0 && ek_dtype_is_integer(tensors[i].dtype))
            add_path(report, tensors[i].name, ek_tensor_int_at(&tensors[i], 0));
}

static void fail(ek_report* report, const char* message) {
    report->mismatches++;
    cJSON_AddItemToArray(report->failures, cJSON_CreateString(message));
    fprintf(stderr, "mismatch: %s\n", message);
}

static int same_shape(const ek_tensor* a, const ek_tensor* b) {
    if (a->rank != b->rank) return 0;
    for (int k = 0; k < a->rank; ++k)
        if (a->shape[k] != b->shape[k]) return 0;
    return 1;
}

void ek_report_compare(ek_report* report, size_t sample, const ek_tensor* ref, const ek_tensor* got) {
    char message[512];
    if (!got) {
        snprintf(message, sizeof message, "sample %zu output '%s': missing from the runtime's outputs", sample, ref->name);
        fail(report, message);
        return;
    }
    if (!same_shape(ref, got)) {
        snprintf(message, sizeof message, "sample %zu output '%s': shape (rank %d, %zu elements) differs from the "
                 "reference (rank %d, %zu elements)", sample, ref->name, got->rank, got->count, ref->rank, ref->count);
        fail(report, message);
        return;
    }
    const int integer = ek_dtype_is_integer(ref->dtype);
    size_t bad = 0, worst = 0;
    double worst_err = -1.0;
    for (size_t i = 0; i < ref->count; ++i) {
        const double r = ek_tensor_at(ref, i), g = ek_tensor_at(got, i);
        double err = fabs(g - r);
        int ok;
        if (integer) ok = ek_dtype_is_integer(got->dtype) ? ek_tensor_int_at(got, i) == ek_tensor_int_at(ref, i) : g == r;
        else if (isnan(r) && isnan(g)) ok = 1, err = 0.0;
        else {
            ok = err <= report->tol.atol + report->tol.rtol * fabs(r); /* false for NaN */
            if (isnan(err)) err = INFINITY;
        }
        if (err > report->max_abs_err) report->max_abs_err = err;
        if (!ok) {
            ++bad;
            if (err > worst_err) worst_err = err, worst = i;
        }
    }
    if (!bad) return;
    if (integer && ref->rank == 0)
        snprintf(message, sizeof message, "sample %zu output '%s': got %lld, expected %lld", sample, ref->name,
                 (long long)ek_tensor_int_at(got, 0), (long long)ek_tensor_int_at(ref, 0));
    else
        snprintf(message, sizeof message, "sample %zu output '%s': %zu/%zu elements out of tolerance (max abs err %.9g "
                 "at flat index %zu: got %.9g, reference %.9g)", sample, ref->name, bad, ref->count, worst_err, worst,
                 ek_tensor_at(got, worst), ek_tensor_at(ref, worst));
    fail(report, message);
}

int ek_report_passed(const ek_report* report) { return report->samples > 0 && report->mismatches == 0; }

cJSON* ek_report_json(const ek_report* report) {
    cJSON* json = cJSON_CreateObject();
    cJSON_AddStringToObject(json, "bundle", report->bundle);
    cJSON_AddStringToObject(json, "runtime", report->runtime);
    cJSON_AddStringToObject(json, "api", report->api);
    cJSON_AddStringToObject(json, "device", report->device);
    cJSON_AddStringToObject(json, "model", report->model);
    cJSON_AddBoolToObject(json, "verified", report->verified);
    cJSON_AddNumberToObject(json, "samples", (double)report->samples);
    if (isfinite(report->max_abs_err)) cJSON_AddNumberToObject(json, "max_abs_err", report->max_abs_err);
    else cJSON_AddNullToObject(json, "max_abs_err");
    cJSON_AddNumberToObject(json, "mismatches", (double)report->mismatches);
    cJSON_AddNumberToObject(json, "atol", report->tol.atol);
    cJSON_AddNumberToObject(json, "rtol", report->tol.rtol);
    cJSON* paths = cJSON_AddObjectToObject(json, "paths");
    for (size_t i = 0; i < report->n_paths; ++i) {
        cJSON* values = cJSON_AddArrayToObject(paths, report->paths[i].name);
        for (size_t k = 0; k < report->paths[i].n; ++k)
            cJSON_AddItemToArray(values, cJSON_CreateNumber((double)report->paths[i].values[k]));
    }
    cJSON_AddStringToObject(json, "status", ek_report_passed(report) ? "passed" : "failed");
    if (cJSON_GetArraySize(report->failures) > 0) {
        cJSON* failures = cJSON_AddArrayToObject(json, "failures");
        for (int i = 0; i < cJSON_GetArraySize(report->failures) && i < 20; ++i)
            cJSON_AddItemToArray(failures, cJSON_CreateString(cJSON_GetArrayItem(report->failures, i)->valuestring));
    }
    return json;
}

void ek_report_print(const ek_report* report, FILE* out) {
    cJSON* json = ek_report_json(report);
    char* text = cJSON_PrintUnformatted(json);
    fprintf(out, "%s\n", text);
    fflush(out);
    cJSON_free(text);
    cJSON_Delete(json);
}

int ek_report_error(const char* bundle, const char* message) {
    fprintf(stderr, "error: %s\n", message);
    cJSON* json = cJSON_CreateObject();
    cJSON_AddStringToObject(json, "bundle", bundle ? bundle : "");
    cJSON_AddStringToObject(json, "status", "error");
    cJSON_AddStringToObject(json, "error", message);
    char* text = cJSON_PrintUnformatted(json);
    printf("%s\n", text);
    fflush(stdout);
    cJSON_free(text);
    cJSON_Delete(json);
    return 2;
}
