/* `--bench` for the C runner: the feed to time (a testdata sample, the manifest's tuned knob values, then
 * --feed scalar overrides), a CLOCK_MONOTONIC timing loop with `edgekit bench`'s budget rule, and one JSON
 * document whose `results` row has the fields of an `edgekit bench --json` row plus "api" (the row schema
 * lives in edgekit/bench/stats.py, BenchResult). Runtime-independent: the runner passes a call back. */
#ifndef EDGEKIT_BENCH_H
#define EDGEKIT_BENCH_H

#include <stdio.h>

#include "edgekit_bundle.h"
#include "edgekit_check.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EK_MAX_FEEDS 16

/* -1: not given on the command line. Without --iters or --seconds: 200 calls or 20 s, at least 10. */
typedef struct {
    int enabled;
    long warmup, iters, threads, sample;
    double seconds;
    const char* feeds[EK_MAX_FEEDS]; /* "NAME=VALUE" as typed (argv) */
    size_t n_feeds;
} ek_bench_options;

void ek_bench_options_init(ek_bench_options* o);
/* If argv[*i] is a bench option, consume it and its value: 1. Not a bench option: 0. A bad value: -1 and
 * one message in err. */
int ek_bench_parse(int argc, char** argv, int* i, ek_bench_options* o, char* err, size_t err_size);

/* The feed to time: copies of testdata sample o->sample's inputs with the manifest's tuned values and
 * each --feed applied (*overrides: the values applied, a cJSON object). 0, or -1 and one message in err for
 * a missing sample, an unknown or non-scalar input, or a value that is no number or outside its range. */
int ek_bench_feed(const ek_bundle* bundle, const ek_bench_options* o, ek_tensor** feed, size_t* n_feed,
                  cJSON** overrides, char* err, size_t err_size);
void ek_bench_feed_free(ek_tensor* feed, size_t n_feed);

/* Milliseconds on CLOCK_MONOTONIC (the timing loop's clock; load_ms too). */
double ek_now_ms(void);
/* The budget o asks for: *iters calls (-1: no count), *seconds (-1: no time limit), at least *min_iters. */
void ek_bench_budget(const ek_bench_options* o, long* iters, double* seconds, long* min_iters);
/* Time `call(ctx)` (0: ok) after o->warmup untimed calls; *ms (malloc'ed, *n of them) per call in ms.
 * 0, or -1 when a call failed (its error is the runner's) or memory ran out. */
typedef int (*ek_bench_call)(void* ctx);
int ek_bench_time(ek_bench_call call, void* ctx, const ek_bench_options* o, double** ms, size_t* n);

/* What the runner measured. NAN for an unknown size_mb / rss_before_load_mb. */
typedef struct {
    const char *runtime, *api, *device, *artifact, *precision, *runner, *version;
    double load_ms, size_mb, rss_before_load_mb;
    const double* ms;
    size_t n;
} ek_bench_run;

/* A "KEY: N kB" line of /proc/self/status in MB (VmHWM: peak resident memory, VmRSS: current); NAN elsewhere. */
double ek_proc_status_mb(const char* key);
/* precision and size_mb of the manifest's artifact entry for `file` (defaults: fp32, NAN). */
void ek_bench_describe_artifact(const ek_bundle* bundle, const char* file, ek_bench_run* run);
/* One JSON line: bundle, feed, settings, the testdata check and the results row. */
void ek_bench_print(const ek_bundle* bundle, const char* bundle_arg, const ek_bench_options* o, int verified,
                    const ek_tensor* feed, size_t n_feed, const cJSON* overrides, const ek_report* check,
                    const ek_bench_run* run, FILE* out);

#ifdef __cplusplus
}
#endif

#endif /* EDGEKIT_BENCH_H */
