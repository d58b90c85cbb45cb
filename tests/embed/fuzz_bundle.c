/* Deterministic mutation fuzzer for the C bundle reader (examples/c: ek_bundle_load, the testdata .bin
 * loading, ek_artifact_for/ek_artifact_check and the comparison over what was loaded). Built by
 * tests/embed/test_hostile.py with gcc's -fsanitize=address,undefined: any memory error or UB aborts the
 * run, after the case at fault is saved as a regression case (--crashes DIR).
 *
 * A case is one text blob describing a bundle: sections "@file NAME\n<bytes>" and "@link NAME TARGET\n",
 * NAME being manifest.json, model.* or testdata/<name>. Each run writes the case into a scratch bundle
 * beside a file outside it (outside.bin, 8 random bytes), loads it, and checks what the reader returned.
 * "@FORMAT@" in a case stands for the testdata format string (EK_TESTDATA_FORMAT), so saved cases outlive
 * a change of it.
 *
 *   fuzz_bundle [--cases N] [--seed S] [--crashes DIR] [--work DIR]   mutate the built-in seeds N times
 *   fuzz_bundle [--verbose] --replay FILE...              run saved cases once each (the seeds: 0 cases) */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "edgekit_bundle.h"
#include "edgekit_check.h"
#include "edgekit_sha256.h"

#ifndef EK_TESTDATA_FORMAT
#define EK_TESTDATA_FORMAT "edgekit.testdata/1"
#endif

#define MAX_CASE (64 * 1024)
#define MAX_FILES 24

typedef struct {
    char* data;
    size_t size;
} blob;

static char g_work[256], g_bundle[300], g_crashes[512] = ".";
static unsigned char g_outside[8];
static blob g_case; /* the case being run, saved if it dies */
static unsigned long long g_case_id;
static int g_verbose; /* --verbose: each case's load error on stderr */
static char g_made[MAX_FILES][200]; /* files the last case created, removed before the next */
static int g_n_made;

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { /* xorshift64*: the same seed, the same cases */
    g_rng ^= g_rng >> 12, g_rng ^= g_rng << 25, g_rng ^= g_rng >> 27;
    return g_rng * 2685821657736338717ull;
}
static size_t below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

static void save_case(void) { /* from the sanitizers' death callback or SIGABRT: once */
    static volatile sig_atomic_t saved;
    if (saved) return;
    saved = 1;
    char path[700];
    snprintf(path, sizeof path, "%s/crash-%llu.case", g_crashes, g_case_id);
    FILE* f = fopen(path, "wb");
    if (f) fwrite(g_case.data, 1, g_case.size, f), fclose(f);
    fprintf(stderr, "fuzz_bundle: case saved to %s\n", path);
}

#if defined(__SANITIZE_ADDRESS__) /* gcc; clang: __has_feature(address_sanitizer) */
#define HAVE_DEATH_CALLBACK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_DEATH_CALLBACK 1
#endif
#endif
#ifdef HAVE_DEATH_CALLBACK
#include <sanitizer/common_interface_defs.h>
#endif

/* UBSan (with -fno-sanitize-recover) exits without the death callback; make it abort, and save on SIGABRT. */
const char* __ubsan_default_options(void);
const char* __ubsan_default_options(void) { return "print_stacktrace=1:halt_on_error=1:abort_on_error=1"; }

static void on_abort(int sig) {
    save_case();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void die(const char* what) {
    fprintf(stderr, "fuzz_bundle: invariant broken: %s\n", what);
    abort(); /* on_abort saves the case */
}

/* Link targets are chosen from this list only: the harness must not read devices or /proc itself. */
static const char* link_target(const char* want) {
    static char outside_abs[300];
    snprintf(outside_abs, sizeof outside_abs, "%s/outside.bin", g_work);
    const char* ok[] = {"../outside.bin", "../../outside.bin", "manifest.json", "../manifest.json", "testdata",
                        ".", "self", "000.bin", "/etc/hostname", "model.bin"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; ++i)
        if (!strcmp(want, ok[i])) return ok[i];
    return !strcmp(want, "OUTSIDE_ABS") ? outside_abs : NULL;
}

static int safe_name(const char* name) {
    const char* base = strncmp(name, "testdata/", 9) == 0 ? name + 9 : name;
    if (!*base || !strcmp(base, ".") || !strcmp(base, "..") || strlen(name) >= 100) return 0;
    for (const char* c = base; *c; ++c)
        if (!(('a' <= *c && *c <= 'z') || ('A' <= *c && *c <= 'Z') || ('0' <= *c && *c <= '9') || strchr("._-", *c)))
            return 0;
    return 1;
}

static void clear_bundle(void) {
    char path[600];
    for (int i = 0; i < g_n_made; ++i) snprintf(path, sizeof path, "%s/%s", g_bundle, g_made[i]), unlink(path);
    g_n_made = 0;
}

/* Write the case's sections into the scratch bundle (malformed sections are skipped). */
static void materialize(const blob* c) {
    clear_bundle();
    const char *p = c->data, *end = c->data + c->size;
    while (p < end && g_n_made < MAX_FILES) {
        const char* next = p;
        do next = memchr(next + 1, '@', (size_t)(end - next - 1)); while (next && next[-1] != '\n');
        if (!next) next = end;
        const char* eol = memchr(p, '\n', (size_t)(next - p));
        const int is_file = !strncmp(p, "@file ", 6), is_link = !strncmp(p, "@link ", 6);
        if (eol && (is_file || is_link) && eol - p < 200) {
            char header[200], path[600];
            memcpy(header, p + 6, (size_t)(eol - p - 6));
            header[eol - p - 6] = '\0';
            char* target = strchr(header, ' ');
            if (target) *target++ = '\0';
            size_t body = (size_t)(next - eol - 1);
            if (body > 0 && next[-1] == '\n') --body; /* each body ends with a '\n' that is not part of it */
            snprintf(path, sizeof path, "%s/%s", g_bundle, header);
            if (safe_name(header)) {
                int made = 0;
                if (is_file && !target) {
                    FILE* f = fopen(path, "wb");
                    if (f) {
                        if (body > 0) fwrite(eol + 1, 1, body, f);
                        fclose(f);
                        made = 1;
                    }
                } else if (is_link && target && link_target(target)) {
                    const char* base = strrchr(header, '/') ? strrchr(header, '/') + 1 : header;
                    made = symlink(!strcmp(target, "self") ? base : link_target(target), path) == 0; /* self: ELOOP */
                }
                if (made) snprintf(g_made[g_n_made++], sizeof g_made[0], "%s", header);
            }
        }
        p = next;
    }
}

static void check_tensor(const ek_tensor* t) {
    size_t product = 1;
    if (!t->name || !t->data || t->rank < 0 || t->rank > EK_MAX_RANK) die("tensor fields");
    for (int k = 0; k < t->rank; ++k) {
        if (t->shape[k] < 0) die("negative dim accepted");
        product *= (size_t)t->shape[k];
    }
    if (product != t->count || t->item_size != ek_dtype_size(t->dtype)) die("count or item size");
    if (t->count * t->item_size == sizeof g_outside && !memcmp(t->data, g_outside, sizeof g_outside))
        die("read outside.bin: a path escaped the bundle");
    volatile double sink = 0; /* touch every element: ASan sees any over-read */
    for (size_t i = 0; i < t->count; ++i) sink += ek_tensor_at(t, i);
    (void)sink;
}

/* The case with "@FORMAT@" spelled out. */
static void expand(const blob* c, blob* out) {
    static const char mark[] = "@FORMAT@";
    const size_t m = sizeof mark - 1, f = strlen(EK_TESTDATA_FORMAT);
    out->size = 0;
    for (size_t i = 0; i < c->size;) {
        const int hit = i + m <= c->size && !memcmp(c->data + i, mark, m);
        const char* from = hit ? EK_TESTDATA_FORMAT : c->data + i;
        const size_t n = hit ? f : 1;
        if (out->size + n > 2 * MAX_CASE) break;
        memcpy(out->data + out->size, from, n);
        out->size += n, i += hit ? m : 1;
    }
}

static int run_case(const blob* c, FILE* devnull) {
    static char expanded_data[2 * MAX_CASE];
    blob expanded = {expanded_data, 0};
    char err[1024];
    ek_bundle bundle;
    g_case = *c;
    expand(c, &expanded);
    materialize(&expanded);
    const int loaded = ek_bundle_load(g_bundle, &bundle, err, sizeof err) == 0;
    if (g_verbose) fprintf(stderr, "case %llu: %s\n", g_case_id, loaded ? "loaded" : err);
    if (loaded) {
        ek_report report;
        ek_report_init(&report);
        for (size_t i = 0; i < bundle.n_samples; ++i) {
            const ek_sample* s = &bundle.samples[i];
            for (size_t k = 0; k < s->n_inputs; ++k) check_tensor(&s->inputs[k]);
            for (size_t k = 0; k < s->n_outputs; ++k) {
                check_tensor(&s->outputs[k]);
                ek_report_compare(&report, i, &s->outputs[k], &s->outputs[k]);
            }
            ek_report_paths(&report, s->inputs, s->n_inputs);
            ek_report_paths(&report, s->outputs, s->n_outputs);
            report.samples++;
        }
        ek_report_print(&report, devnull);
        ek_report_free(&report);
        const char* names[] = {"model.xml", "model.onnx", "model.sm86.engine"};
        for (size_t i = 0; i < 3; ++i) {
            const char* key = NULL;
            const cJSON* entry = ek_artifact_for(&bundle, names[i], &key);
            if (entry) ek_artifact_check(&bundle, entry, key, (int)(i != 1), err, sizeof err);
        }
    }
    ek_bundle_free(&bundle);
    return loaded;
}

/* --- seeds and mutations ---------------------------------------------------------------------------- */

static void append(blob* b, const void* data, size_t n) {
    if (b->size + n > MAX_CASE) n = MAX_CASE - b->size;
    memcpy(b->data + b->size, data, n);
    b->size += n;
}
static void appendf(blob* b, const char* text) { append(b, text, strlen(text)); }

static void add_file(blob* b, const char* name, const void* data, size_t n) {
    appendf(b, "@file "), appendf(b, name), appendf(b, "\n"), append(b, data, n), appendf(b, "\n");
}

static void add_bin(blob* b, const char* name, size_t n) {
    unsigned char data[64];
    for (size_t i = 0; i < n && i < sizeof data; ++i) data[i] = (unsigned char)rnd();
    add_file(b, name, data, n < sizeof data ? n : sizeof data);
}

static void hex_of(const char* text, size_t n, char hex[65]) {
    ek_sha256 h;
    ek_sha256_init(&h);
    ek_sha256_update(&h, text, n);
    ek_sha256_hex(&h, hex);
}

/* A small valid bundle: three artifacts with their digests, two samples of assorted dtypes and ranks;
 * `variant` adds one hostile entry (an escape through a link or "..", a wrapping shape). */
static blob seed(int variant) {
    static const char xml[] = "<net/>", weights[] = "0123456789abcdef", onnx[] = "onnx-bytes", engine[] = "engine";
    char manifest[2048], index[2048], a[65], w[65], o[65], e[65];
    hex_of(xml, 6, a), hex_of(weights, 16, w), hex_of(onnx, 10, o), hex_of(engine, 6, e);
    snprintf(manifest, sizeof manifest,
             "{\"schema\": \"edgekit.bundle/1\", \"outputs\": [{\"name\": \"y\"}], \"artifacts\": {"
             "\"openvino\": {\"path\": \"model.xml\", \"weights\": \"model.bin\", \"sha256\": \"%s\","
             " \"weights_sha256\": \"%s\", \"size_bytes\": 22},"
             "\"onnx\": {\"path\": \"model.onnx\", \"data\": null, \"sha256\": \"%s\", \"size_bytes\": 10},"
             "\"tensorrt\": [{\"path\": \"model.sm86.engine\", \"sha256\": \"%s\", \"size_bytes\": 6}]}}", a, w, o, e);
    const char* extra[] = {"", ", \"l\": {\"file\": \"link.bin\", \"shape\": [], \"dtype\": \"int64\"}",
                           ", \"u\": {\"file\": \"../../outside.bin\", \"shape\": [2], \"dtype\": \"int32\"}",
                           ", \"w\": {\"file\": \"000.w.bin\", \"shape\": [2, 4611686018427387905],"
                           " \"dtype\": \"float32\"}"};
    snprintf(index, sizeof index,
             "{\"format\": \"@FORMAT@\", \"samples\": ["
             "{\"inputs\": {\"x\": {\"file\": \"000.x.bin\", \"shape\": [2, 3], \"dtype\": \"float32\"},"
             " \"n\": {\"file\": \"000.n.bin\", \"shape\": [], \"dtype\": \"int64\"}%s},"
             " \"outputs\": {\"y\": {\"file\": \"000.y.bin\", \"shape\": [2], \"dtype\": \"float16\"},"
             " \"e\": {\"file\": \"000.e.bin\", \"shape\": [], \"dtype\": \"bool\"}}},"
             "{\"inputs\": {\"b\": {\"file\": \"001.b.bin\", \"shape\": [4], \"dtype\": \"uint8\"}},"
             " \"outputs\": {\"d\": {\"file\": \"001.d.bin\", \"shape\": [1, 1], \"dtype\": \"float64\"}}}]}",
             extra[variant]);
    blob b = {malloc(MAX_CASE), 0};
    if (!b.data) abort();
    add_file(&b, "manifest.json", manifest, strlen(manifest));
    add_file(&b, "model.xml", xml, 6), add_file(&b, "model.bin", weights, 16);
    add_file(&b, "model.onnx", onnx, 10), add_file(&b, "model.sm86.engine", engine, 6);
    add_file(&b, "testdata/index.json", index, strlen(index));
    add_bin(&b, "testdata/000.x.bin", 24), add_bin(&b, "testdata/000.n.bin", 8);
    add_bin(&b, "testdata/000.y.bin", 4), add_bin(&b, "testdata/000.e.bin", 1);
    add_bin(&b, "testdata/001.b.bin", 4), add_bin(&b, "testdata/001.d.bin", 8);
    if (variant == 1) appendf(&b, "@link testdata/link.bin ../../outside.bin\n");
    if (variant == 3) add_bin(&b, "testdata/000.w.bin", 8);
    return b;
}

static const char* kTokens[] = {
    "-1", "0", "1", "8", "255", "1.5", "-0", "1e308", "-1e308", "4294967297", "9007199254740993",
    "2305843009213693952", "2305843009213693953", "4611686018427387904", "9223372036854775807",
    "18446744073709551615", "77158673929", "null", "true", "\"\"", "[]", "{}", "[[[[[[[[[[[[", "]]]]", "\"x\"",
    "\"../outside.bin\"", "\"../../outside.bin\"", "\"/etc/hostname\"", "\"../../etc/passwd\"", "\"link.bin\"",
    "\"testdata/../manifest.json\"",
    "\"..\"", "\"self\"", "\"float64\"", "\"bool\"", "\"float16\"", "\"uint64\"", "\"int8\"", "\"complex64\"",
    "\"shape\"", "\"file\"", "\"dtype\"", "\"inputs\"", "\"outputs\"", "\"samples\"", "\"path\"", "\"weights\"",
    "\"data\"", "\"sha256\"", "\"size_bytes\"", "[1,1,1,1,1,1,1,1,1]", "[-1,-1]", "[27,19,43,5419,77158673929]",
    "\n@link testdata/link.bin ../../outside.bin\n", "\n@link link.bin ../outside.bin\n",
    "\n@link testdata/000.x.bin OUTSIDE_ABS\n",
    "\n@link testdata/000.n.bin self\n", "\n@link model.bin /etc/hostname\n", "\n@file testdata/000.n.bin\n"};
#define N_TOKENS (sizeof kTokens / sizeof kTokens[0])

static void insert(blob* b, size_t at, const char* data, size_t n) {
    if (b->size + n > MAX_CASE) return;
    memmove(b->data + at + n, b->data + at, b->size - at);
    memcpy(b->data + at, data, n);
    b->size += n;
}

static void erase(blob* b, size_t at, size_t n) {
    if (at + n > b->size) n = b->size - at;
    memmove(b->data + at, b->data + at + n, b->size - at - n);
    b->size -= n;
}

/* The extent of the JSON number or string at/after `at`: start and length, 0 if none. */
static size_t token_at(const blob* b, size_t at, size_t* start) {
    while (at < b->size && !strchr("\"-0123456789", b->data[at])) ++at;
    if (at >= b->size) return 0;
    size_t end = at + 1;
    if (b->data[at] == '"') {
        while (end < b->size && b->data[end] != '"' && b->data[end] != '\n') ++end;
        end += end < b->size;
    } else {
        while (end < b->size && strchr("0123456789.eE+-", b->data[end])) ++end;
    }
    *start = at;
    return end - at;
}

static void mutate(blob* b) {
    const int n = below(2) ? 1 : 2 + (int)below(3);
    for (int i = 0; i < n && b->size > 0; ++i) {
        const size_t at = below(b->size);
        size_t start = 0, len = 0;
        const char* token = kTokens[below(N_TOKENS)];
        switch (below(7)) {
            case 0: b->data[at] ^= (char)(1u << below(8)); break;
            case 1: b->data[at] = "\"[]{},:-09.e\\/\0"[below(15)]; break;
            case 2: erase(b, at, 1 + below(16)); break;
            case 3: /* duplicate a short run elsewhere */
                len = 1 + below(32);
                if (at + len <= b->size) {
                    char tmp[32];
                    memcpy(tmp, b->data + at, len);
                    insert(b, below(b->size), tmp, len);
                }
                break;
            case 4: insert(b, at, token, strlen(token)); break;
            default: /* replace a whole number or string: the structure-aware half */
                if ((len = token_at(b, at, &start)) > 0) erase(b, start, len), insert(b, start, token, strlen(token));
        }
    }
}

static int read_case(const char* path, blob* b) {
    FILE* f = fopen(path, "rb");
    if (!f) return -1;
    b->size = fread(b->data, 1, MAX_CASE, f);
    fclose(f);
    return 0;
}

int main(int argc, char** argv) {
    long cases = 10000;
    unsigned long long seed_value = 1;
    int replay_from = 0;
    const char* scratch = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"; /* --work: scratch bundles go here */
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--cases") && i + 1 < argc) cases = atol(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed_value = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--crashes") && i + 1 < argc) snprintf(g_crashes, sizeof g_crashes, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--work") && i + 1 < argc) scratch = argv[++i];
        else if (!strcmp(argv[i], "--verbose")) g_verbose = 1;
        else if (!strcmp(argv[i], "--replay")) { replay_from = i + 1; break; }
        else return fprintf(stderr, "usage: fuzz_bundle [--cases N] [--seed S] [--crashes DIR] [--work DIR] [--verbose]"
                            " [--replay FILE...]\n"), 2;
    }
#ifdef HAVE_DEATH_CALLBACK
    __sanitizer_set_death_callback(save_case);
#endif
    signal(SIGABRT, on_abort);
    g_rng ^= seed_value * 0xD1B54A32D192ED03ull;
    snprintf(g_work, sizeof g_work, "%s/ek-fuzz-XXXXXX", scratch);
    if (!mkdtemp(g_work)) return perror("mkdtemp"), 2;
    snprintf(g_bundle, sizeof g_bundle, "%s/b", g_work);
    char path[600];
    snprintf(path, sizeof path, "%s/testdata", g_bundle);
    mkdir(g_bundle, 0700), mkdir(path, 0700);
    for (size_t i = 0; i < sizeof g_outside; ++i) g_outside[i] = (unsigned char)rnd();
    snprintf(path, sizeof path, "%s/outside.bin", g_work);
    FILE* out = fopen(path, "wb");
    if (!out || fwrite(g_outside, 1, sizeof g_outside, out) != sizeof g_outside) return perror(path), 2;
    fclose(out);
    FILE* devnull = fopen("/dev/null", "w");

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long loaded = 0, run = 0;
    blob work = {malloc(MAX_CASE), 0};
    if (replay_from && replay_from == argc) { /* no files: run the seeds as they are */
        for (int s = 0; s < 4; ++s, ++run) {
            blob b = seed(s);
            g_case_id = (unsigned long long)s;
            loaded += run_case(&b, devnull);
            free(b.data);
        }
    } else if (replay_from) {
        for (int i = replay_from; i < argc; ++i, ++run) {
            if (read_case(argv[i], &work) != 0) return perror(argv[i]), 2;
            g_case_id = (unsigned long long)run;
            loaded += run_case(&work, devnull);
        }
    } else {
        blob seeds[4];
        for (int s = 0; s < 4; ++s) seeds[s] = seed(s);
        for (; run < cases; ++run) {
            const blob* from = &seeds[below(2) ? 0 : below(4)]; /* the valid seed half the time */
            memcpy(work.data, from->data, from->size);
            work.size = from->size;
            if (run >= 4) mutate(&work); /* the seeds themselves run first, unchanged */
            g_case_id = seed_value * 1000000000ull + (unsigned long long)run;
            loaded += run_case(&work, devnull);
        }
        for (int s = 0; s < 4; ++s) free(seeds[s].data);
    }
    clear_bundle();
    snprintf(path, sizeof path, "%s/testdata", g_bundle), rmdir(path), rmdir(g_bundle);
    snprintf(path, sizeof path, "%s/outside.bin", g_work), unlink(path), rmdir(g_work);
    fclose(devnull);
    free(work.data);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("cases: %ld loaded: %ld refused: %ld seconds: %.2f\n", run, loaded, run - loaded,
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    return 0;
}
