/* edgekit_run_c: load an edgekit bundle's OpenVINO IR with OpenVINO's C API (the surface JNI and Swift
 * bindings wrap), feed every reference sample in testdata/, compare each output with the stored
 * reference and print one JSON line; with --bench, then time one sample and print one `edgekit bench`-style
 * JSON document instead (bench.c). Exit status: 0 passed, 1 a mismatch (no timing then), 2 a usage or
 * load error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openvino/c/openvino.h>

#include "edgekit_bench.h"
#include "edgekit_bundle.h"
#include "edgekit_check.h"

static const char* kUsage =
    "usage: edgekit_run_c BUNDLE [--device CPU] [--model FILE] [--atol 1e-4] [--rtol 1e-3] [--no-verify]\n"
    "                  [--bench [--warmup 10] [--iters N | --seconds S] [--threads N] [--sample K] [--feed NAME=VALUE]...]\n"
    "  runs BUNDLE's OpenVINO IR (or --model: an .xml/.onnx file in the bundle) on its testdata, after checking\n"
    "  the model files against the manifest's sha256 and size_bytes (--no-verify skips that check); --bench then\n"
    "  times testdata sample K (default 0) and prints edgekit bench's JSON (default: 200 calls or 20 s)";

static const struct { const char* dtype; ov_element_type_e type; } kTypes[] = {
    {"float32", F32}, {"float16", F16}, {"float64", F64}, {"int64", I64}, {"int32", I32}, {"int16", I16},
    {"int8", I8},     {"uint8", U8},    {"uint16", U16},  {"uint32", U32}, {"uint64", U64}, {"bool", BOOLEAN}};
#define N_TYPES (sizeof kTypes / sizeof kTypes[0])

/* Every OpenVINO call returns a status; on failure keep OpenVINO's message and jump to cleanup. */
#define OV_CHECK(call)                                                                                     \
    do {                                                                                                   \
        ov_status_e status_ = (call);                                                                      \
        if (status_ != OK) {                                                                               \
            const char* detail_ = ov_get_last_err_msg();                                                   \
            snprintf(err, err_size, "%s: %s (%s)", #call, ov_get_error_info(status_), detail_ ? detail_ : "-"); \
            goto cleanup;                                                                                  \
        }                                                                                                  \
    } while (0)

typedef struct {
    ov_core_t* core;
    ov_model_t* model;
    ov_compiled_model_t* compiled;
    ov_infer_request_t* request;
} ov_runner;

static void runner_close(ov_runner* r) {
    if (r->request) ov_infer_request_free(r->request);
    if (r->compiled) ov_compiled_model_free(r->compiled);
    if (r->model) ov_model_free(r->model);
    if (r->core) ov_core_free(r->core);
    memset(r, 0, sizeof *r);
}

static int runner_open(ov_runner* r, const char* model, const char* weights, const char* device, long threads,
                       char* err, size_t err_size) {
    char n_threads[32];
    snprintf(n_threads, sizeof n_threads, "%ld", threads);
    memset(r, 0, sizeof *r);
    OV_CHECK(ov_core_create(&r->core));
    OV_CHECK(ov_core_read_model(r->core, model, weights, &r->model));
    /* Parity with the reference needs f32 arithmetic: CPUs with bf16/AMX would otherwise downcast. The
     * LATENCY hint is the Python runner's (edgekit/runtimes/openvino.py), so bench rows compare. */
    OV_CHECK(ov_core_compile_model(r->core, r->model, device, threads > 0 ? 6 : 4, &r->compiled,
                                   ov_property_key_hint_inference_precision, "f32",
                                   ov_property_key_hint_performance_mode, "LATENCY",
                                   ov_property_key_inference_num_threads, n_threads));
    OV_CHECK(ov_compiled_model_create_infer_request(r->compiled, &r->request));
    return 0;
cleanup:
    runner_close(r);
    return -1;
}

static int set_input(ov_runner* r, const ek_tensor* in, char* err, size_t err_size) {
    ov_shape_t shape = {0, NULL};
    ov_tensor_t* tensor = NULL;
    int64_t scalar_dims[1] = {0};
    int rc = -1;
    size_t t = 0;
    while (t < N_TYPES && strcmp(kTypes[t].dtype, in->dtype) != 0) ++t;
    if (t == N_TYPES) {
        snprintf(err, err_size, "input '%s': no OpenVINO element type for %s", in->name, in->dtype);
        return -1;
    }
    if (in->rank > 0) OV_CHECK(ov_shape_create(in->rank, in->shape, &shape));
    else shape.dims = scalar_dims; /* ov_shape_create rejects rank 0; a {0, dims} shape is a scalar */
    /* Wraps the host buffer without a copy; OpenVINO only reads inputs. */
    OV_CHECK(ov_tensor_create_from_host_ptr(kTypes[t].type, shape, in->data, &tensor));
    OV_CHECK(ov_infer_request_set_tensor(r->request, in->name, tensor));
    rc = 0;
cleanup:
    if (tensor) ov_tensor_free(tensor);
    if (shape.dims && shape.dims != scalar_dims) ov_shape_free(&shape);
    return rc;
}

/* Copy output `name` out of OpenVINO's buffer into `out`. */
static int get_output(ov_runner* r, const char* name, ek_tensor* out, char* err, size_t err_size) {
    ov_tensor_t* tensor = NULL;
    ov_shape_t shape = {0, NULL};
    ov_element_type_e type;
    void* data = NULL;
    int rc = -1;
    size_t t = 0;
    OV_CHECK(ov_infer_request_get_tensor(r->request, name, &tensor));
    if (ov_tensor_get_shape(tensor, &shape) != OK) { /* it refuses rank 0, as ov_shape_create does */
        size_t count = 0;
        OV_CHECK(ov_tensor_get_size(tensor, &count));
        if (count != 1) OV_CHECK(ov_tensor_get_shape(tensor, &shape)); /* not a scalar: report the error */
        shape.rank = 0, shape.dims = NULL;
    }
    OV_CHECK(ov_tensor_get_element_type(tensor, &type));
    OV_CHECK(ov_tensor_data(tensor, &data));
    while (t < N_TYPES && kTypes[t].type != type) ++t;
    if (t == N_TYPES || ek_tensor_init(out, name, kTypes[t].dtype, (int)shape.rank, shape.dims) != 0) {
        snprintf(err, err_size, "output '%s': unsupported element type %d or rank %lld", name, (int)type,
                 (long long)shape.rank);
        goto cleanup;
    }
    memcpy(out->data, data, out->count * out->item_size);
    rc = 0;
cleanup:
    if (shape.dims) ov_shape_free(&shape);
    if (tensor) ov_tensor_free(tensor);
    return rc;
}

/* Run one sample; fills outputs[i] for the manifest's outputs (n of them). */
static int run_sample(ov_runner* r, const ek_sample* s, const cJSON* specs, ek_tensor* outputs, char* err,
                      size_t err_size) {
    for (size_t i = 0; i < s->n_inputs; ++i)
        if (set_input(r, &s->inputs[i], err, err_size) != 0) return -1;
    OV_CHECK(ov_infer_request_infer(r->request));
    size_t k = 0;
    const cJSON* spec;
    cJSON_ArrayForEach(spec, specs) {
        const cJSON* name = cJSON_GetObjectItemCaseSensitive(spec, "name");
        if (!cJSON_IsString(name) || get_output(r, name->valuestring, &outputs[k++], err, err_size) != 0) return -1;
    }
    return 0;
cleanup:
    return -1;
}

static int parse_number(const char* text, double* out) {
    char* end = NULL;
    *out = strtod(text, &end);
    return end != text && *end == '\0';
}

/* The model file (and weights) to load: inside the bundle, with the files of its manifest entry, and unless
 * --no-verify matching the manifest's sha256/size_bytes. 0, or -1 and err. */
static int model_paths(const ek_bundle* bundle, const char* model, const char* weights, int from_cli, int verify,
                       char** model_path, char** weights_path, char* err, size_t err_size) {
    char what[512];
    const char* key = NULL;
    const cJSON* entry = ek_artifact_for(bundle, model, &key);
    if (from_cli) snprintf(what, sizeof what, "--model");
    else snprintf(what, sizeof what, "%s/manifest.json: artifacts.%s.path", bundle->dir, key ? key : "?");
    if (!(*model_path = ek_bundle_path(bundle, "", model, what, err, err_size))) return -1;
    snprintf(what, sizeof what, "%s/manifest.json: artifacts.openvino.weights", bundle->dir);
    if (weights && !(*weights_path = ek_bundle_path(bundle, "", weights, what, err, err_size))) return -1;
    if (entry) return ek_artifact_check(bundle, entry, key, verify, err, err_size); /* weights/data too */
    if (!verify) return 0;
    snprintf(err, err_size, "%s/%s: not an artifact listed in manifest.json, so it cannot be verified "
             "(--no-verify skips the check)", bundle->dir, model);
    return -1;
}

/* --bench: one timed call runs the feed and drops the outputs (copied out, as the Python runner does). */
typedef struct {
    ov_runner* runner;
    ek_sample feed;
    const cJSON* specs;
    ek_tensor* outputs;
    size_t n_outputs;
    char* err;
    size_t err_size;
} bench_call_ctx;

static int bench_call(void* p) {
    bench_call_ctx* c = p;
    const int rc = run_sample(c->runner, &c->feed, c->specs, c->outputs, c->err, c->err_size);
    for (size_t j = 0; j < c->n_outputs; ++j) ek_tensor_free(&c->outputs[j]);
    return rc;
}

int main(int argc, char** argv) {
    const char *bundle_dir = NULL, *device = "CPU", *model = NULL;
    int verify = 1, parsed = 0;
    ek_tolerance tol = {1e-4, 1e-3};
    ek_bench_options bench;
    ek_bench_options_init(&bench);
    char err[1024] = "";
    for (int i = 1; i < argc; ++i) {
        const char* arg = argv[i];
        const int has_value = i + 1 < argc;
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) return fprintf(stderr, "%s\n", kUsage), 0;
        else if (!strcmp(arg, "--device") && has_value) device = argv[++i];
        else if (!strcmp(arg, "--model") && has_value) model = argv[++i];
        else if (!strcmp(arg, "--no-verify")) verify = 0;
        else if (!strcmp(arg, "--atol") && has_value && parse_number(argv[++i], &tol.atol)) continue;
        else if (!strcmp(arg, "--rtol") && has_value && parse_number(argv[++i], &tol.rtol)) continue;
        else if ((parsed = ek_bench_parse(argc, argv, &i, &bench, err, sizeof err)) < 0) return ek_report_error(bundle_dir, err);
        else if (parsed) continue;
        else if (arg[0] != '-' && !bundle_dir) bundle_dir = arg;
        else return ek_report_error(bundle_dir, kUsage);
    }
    if (!bundle_dir) return ek_report_error("", kUsage);

    ek_bundle bundle;
    if (ek_bundle_load(bundle_dir, &bundle, err, sizeof err) != 0) {
        ek_bundle_free(&bundle);
        return ek_report_error(bundle_dir, err);
    }
    const char* weights = NULL;
    const int from_cli = model != NULL;
    if (!model && (model = ek_artifact_field(&bundle, "openvino", "path")))
        weights = ek_artifact_field(&bundle, "openvino", "weights");
    if (!model) model = ek_artifact_field(&bundle, "onnx", "path"); /* OpenVINO reads ONNX too */
    char *model_path = NULL, *weights_path = NULL;
    const cJSON* specs = cJSON_GetObjectItemCaseSensitive(bundle.manifest, "outputs");
    const size_t n_outputs = (size_t)cJSON_GetArraySize(specs);
    ek_tensor* outputs = calloc(n_outputs + 1, sizeof *outputs);
    ek_tensor* feed = NULL;
    size_t n_feed = 0, n_ms = 0;
    double* ms = NULL;
    cJSON* overrides = NULL;
    ek_report report;
    ek_report_init(&report);
    ov_runner runner;
    memset(&runner, 0, sizeof runner);
    ek_bench_run run = {"openvino", "c", device, model, "fp32", "edgekit_run_c", "", 0.0, NAN, NAN, NULL, 0};
    ov_version_t version = {NULL, NULL};
    int rc = 2;
    if (!model || bundle.n_samples == 0)
        snprintf(err, sizeof err, "%s: %s", bundle_dir,
                 model ? "the bundle has no testdata to check" : "no openvino or onnx artifact");
    else if (!outputs || !report.failures)
        snprintf(err, sizeof err, "out of memory");
    else if ((!bench.enabled || ek_bench_feed(&bundle, &bench, &feed, &n_feed, &overrides, err, sizeof err) == 0) &&
             model_paths(&bundle, model, weights, from_cli, verify, &model_path, &weights_path, err, sizeof err) == 0) {
        run.rss_before_load_mb = ek_proc_status_mb("VmRSS");
        const double start = ek_now_ms();
        rc = runner_open(&runner, model_path, weights_path, device, bench.threads, err, sizeof err) == 0 ? 0 : 2;
        run.load_ms = ek_now_ms() - start;
    }
    report.bundle = bundle_dir, report.runtime = "openvino", report.api = "c", report.device = device;
    report.model = model, report.tol = tol, report.verified = verify;
    for (size_t i = 0; rc == 0 && i < bundle.n_samples; ++i) {
        const ek_sample* s = &bundle.samples[i];
        if (run_sample(&runner, s, specs, outputs, err, sizeof err) != 0) rc = 2;
        ek_report_paths(&report, s->inputs, s->n_inputs);
        ek_report_paths(&report, outputs, n_outputs);
        for (size_t k = 0; rc == 0 && k < s->n_outputs; ++k) {
            const ek_tensor* got = NULL;
            for (size_t j = 0; j < n_outputs; ++j)
                if (outputs[j].name && !strcmp(outputs[j].name, s->outputs[k].name)) got = &outputs[j];
            ek_report_compare(&report, i, &s->outputs[k], got);
        }
        for (size_t j = 0; j < n_outputs; ++j) ek_tensor_free(&outputs[j]);
        report.samples++;
    }
    if (rc == 0 && bench.enabled && ek_report_passed(&report)) { /* a model that fails its testdata is not timed */
        bench_call_ctx ctx = {&runner, {feed, n_feed, NULL, 0}, specs, outputs, n_outputs, err, sizeof err};
        if (ek_bench_time(bench_call, &ctx, &bench, &ms, &n_ms) != 0) {
            rc = 2;
            if (!err[0]) snprintf(err, sizeof err, "out of memory");
        } else {
            if (ov_get_openvino_version(&version) == OK) run.version = version.buildNumber;
            ek_bench_describe_artifact(&bundle, model, &run);
            run.ms = ms, run.n = n_ms;
            ek_bench_print(&bundle, bundle_dir, &bench, verify, feed, n_feed, overrides, &report, &run, stdout);
        }
    } else if (rc == 0) {
        if (bench.enabled) fprintf(stderr, "error: the testdata check failed: not benchmarking\n");
        ek_report_print(&report, stdout);
        rc = ek_report_passed(&report) ? 0 : 1;
    }
    if (rc == 2) rc = ek_report_error(bundle_dir, err);
    if (version.buildNumber) ov_version_free(&version);
    runner_close(&runner);
    ek_report_free(&report);
    ek_bench_feed_free(feed, n_feed);
    cJSON_Delete(overrides);
    free(ms);
    free(outputs);
    free(model_path);
    free(weights_path);
    ek_bundle_free(&bundle);
    return rc;
}
