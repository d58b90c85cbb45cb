/* Compare a runtime's outputs with a bundle's reference outputs; report as ONE JSON line on stdout with
 * the fields of the manifest's validation block (status, samples, max_abs_err, mismatches, paths). */
#ifndef EDGEKIT_CHECK_H
#define EDGEKIT_CHECK_H

#include <stdio.h>

#include "edgekit_bundle.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EK_MAX_PATHS 16

/* Float outputs: |got - ref| <= atol + rtol * |ref|. Integer outputs must match exactly. */
typedef struct {
    double atol, rtol;
} ek_tolerance;

/* The values one integer scalar (exit_index, num_steps) took, sorted and unique. */
typedef struct {
    char* name;
    int64_t* values;
    size_t n;
} ek_path;

typedef struct {
    const char *bundle, *runtime, *api, *device, *model;
    int verified; /* the model files were checked against the manifest's sha256/size_bytes */
    ek_tolerance tol;
    size_t samples, mismatches;
    double max_abs_err;
    cJSON* failures; /* array of strings */
    ek_path paths[EK_MAX_PATHS];
    size_t n_paths;
} ek_report;

void ek_report_init(ek_report* report);
void ek_report_free(ek_report* report);
/* Record the integer scalars among `tensors` (control-flow markers). */
void ek_report_paths(ek_report* report, const ek_tensor* tensors, size_t n);
/* Compare one reference output with the runtime's (got may be NULL: missing). */
void ek_report_compare(ek_report* report, size_t sample, const ek_tensor* ref, const ek_tensor* got);
int ek_report_passed(const ek_report* report);
void ek_report_print(const ek_report* report, FILE* out);
/* The report line as a cJSON object (the caller deletes it). */
cJSON* ek_report_json(const ek_report* report);
/* A usage or load error: the message on stderr, {"status": "error"} on stdout; returns exit code 2. */
int ek_report_error(const char* bundle, const char* message);

#ifdef __cplusplus
}
#endif

#endif /* EDGEKIT_CHECK_H */
