/*
 * A stand-in for libllamane_coreml (ABI.md, version 3) that runs on Linux: it implements the same
 * C functions, checks each bound buffer as the bridge does, keeps the bindings per handle, records
 * every call as one JSON line, and answers predictably, so that ffi/coreml.ts and
 * runtime/backend/coreml.ts are tested through a real Deno.dlopen. The tests build it with
 * `cc -shared -fPIC` into a temporary directory.
 *
 * Extra exports for the tests: fake_coreml_log (the recorded lines) and fake_coreml_reset. Build
 * with -DFAKE_ABI_VERSION=n to pretend to be another ABI version.
 *
 * Predictable answers:
 *   - open fails (null) when the package path contains "fail-open" (with an underlying error when
 *     it contains "fail-open-underlying"), and times out as the bridge would, naming the timeout
 *     it was given, when it contains "hang-open"; otherwise, like the bridge, it creates the
 *     `compiled` directory when missing ("compiled" is true in the log line then), and when a
 *     cached directory holds a file "rejected" (as a compilation of an older system would be)
 *     it compiles it again once ("recompiled" is true then).
 *   - open logs its flags and timeout; with the flag DECLINE_OUTPUT_BACKINGS, predict fills each
 *     output through a row-padded array of its own and a strided copy, as the bridge copies the
 *     arrays Core ML returns when it has no backings ("copied" lists those outputs).
 *   - predict fails on handles whose package path contains "fail-predict"; otherwise it logs the
 *     bound buffers as they are at that moment (their first bytes read from the caller's memory)
 *     and fills output i with the value i + 1 in its element type.
 *   - compute_plan answers the fixed plan below (more ops for function "prefill"); for a package
 *     whose path contains "uncovered", functions other than the default one get no devices, as
 *     a plan that covers only the default function would report.
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Deno runs nonblocking calls on worker threads, and a test may drive two fake backends at once:
 * every export holds this lock for its whole body so the shared log stays consistent.
 */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void release(int *unused) {
    (void)unused;
    pthread_mutex_unlock(&lock);
}
#define LOCKED                                                                                   \
    pthread_mutex_lock(&lock);                                                                   \
    int held __attribute__((cleanup(release))) = 0;                                              \
    (void)held

enum { FP16 = 0x10010, FP32 = 0x10020, INT32 = 0x20020 };
/* Limits of the fake only; the bridge has none but the rank. */
enum { MAX_RANK = 8, MAX_NAME = 128, MAX_BOUND = 512 };

/* One bound buffer: the name and shape copied, the data pointer kept, as the bridge does. */
typedef struct {
    char name[MAX_NAME];
    size_t name_len;
    uint32_t dtype;
    uint64_t shape[MAX_RANK];
    size_t rank;
    void *data;
    size_t bytes;
} Binding;

enum { DECLINE_OUTPUT_BACKINGS = 1 };

typedef struct {
    int id;
    int fail_predict;
    int decline_backings;
    Binding bound[2][MAX_BOUND];
    size_t count[2];
} Model;

static char *log_text = NULL;
static size_t log_len = 0;
#ifndef FAKE_ABI_VERSION
#define FAKE_ABI_VERSION 3
#endif
static int next_id = 1;

static void append(const char *text) {
    size_t n = strlen(text);
    char *grown = realloc(log_text, log_len + n + 1);
    if (grown == NULL) abort();
    log_text = grown;
    memcpy(log_text + log_len, text, n + 1);
    log_len += n;
}

/* Appends `len` bytes of `text` as a JSON string (test names are plain, but stay safe). */
static void append_string(const uint8_t *text, size_t len) {
    char one[8];
    append("\"");
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '"' || text[i] == '\\') snprintf(one, sizeof one, "\\%c", text[i]);
        else if (text[i] < 0x20) snprintf(one, sizeof one, "\\u%04x", text[i]);
        else snprintf(one, sizeof one, "%c", text[i]);
        append(one);
    }
    append("\"");
}

static int32_t fail(uint8_t *error, size_t capacity, const char *message) {
    if (error != NULL && capacity > 0) {
        size_t n = strlen(message) < capacity - 1 ? strlen(message) : capacity - 1;
        memcpy(error, message, n);
        error[n] = 0;
    }
    return 1;
}

uint32_t llamane_coreml_abi_version(void) { return FAKE_ABI_VERSION; }

static void append_open_fields(const uint8_t *package, size_t package_len, const uint8_t *compiled,
                               size_t compiled_len, const uint8_t *function, size_t function_len,
                               int32_t units, uint32_t timeout_seconds) {
    char number[64];
    append("\"package\":");
    append_string(package, package_len);
    append(",\"compiledPath\":");
    append_string(compiled, compiled_len);
    append(",\"function\":");
    append_string(function, function_len);
    snprintf(number, sizeof number, ",\"units\":%d,\"timeout\":%u", units, timeout_seconds);
    append(number);
}

/* The compiled path as a C string; 0 when it does not fit. */
static int compiled_path(char *path, size_t size, const uint8_t *compiled, size_t compiled_len) {
    if (compiled_len >= size) return 0;
    memcpy(path, compiled, compiled_len);
    path[compiled_len] = 0;
    return 1;
}

/* Creates the compiled directory like the bridge; returns 1 when it had to. */
static int compile(const uint8_t *compiled, size_t compiled_len) {
    char path[4096];
    struct stat info;
    if (!compiled_path(path, sizeof path, compiled, compiled_len)) return 0;
    if (stat(path, &info) == 0) return 0;
    return mkdir(path, 0755) == 0;
}

/* A cached compilation the fake "Core ML" refuses: removed, so that compile makes it again. */
static int drop_rejected(const uint8_t *compiled, size_t compiled_len) {
    char path[4096], marker[4200];
    if (!compiled_path(path, sizeof path, compiled, compiled_len)) return 0;
    snprintf(marker, sizeof marker, "%s/rejected", path);
    if (unlink(marker) != 0) return 0;
    return rmdir(path) == 0;
}

Model *llamane_coreml_open(const uint8_t *package, size_t package_len, const uint8_t *compiled,
                           size_t compiled_len, const uint8_t *function, size_t function_len,
                           int32_t units, uint32_t flags, uint32_t timeout_seconds,
                           uint8_t *error, size_t capacity) {
    LOCKED;
    char text[160];
    append("{\"call\":\"open\",");
    append_open_fields(package, package_len, compiled, compiled_len, function, function_len, units,
                       timeout_seconds);
    snprintf(text, sizeof text, ",\"flags\":%u", flags);
    append(text);
    if (flags & ~(uint32_t)DECLINE_OUTPUT_BACKINGS) {
        append("}\n");
        fail(error, capacity, "unknown flags");
        return NULL;
    }
    if (memmem(package, package_len, "hang-open", 9) != NULL) {
        append("}\n");
        snprintf(text, sizeof text,
                 "Core ML did not finish (load the model) within %u s; raise the timeout if the "
                 "model is large", timeout_seconds);
        fail(error, capacity, text);
        return NULL;
    }
    if (memmem(package, package_len, "fail-open", 9) != NULL) {
        append("}\n");
        fail(error, capacity,
             memmem(package, package_len, "fail-open-underlying", 20) != NULL
                 ? "Core ML could not load the model: The model could not be loaded.; caused by: "
                   "E5RT: fake program load failure"
                 : "Core ML could not load the model: fake failure \xe2\x9c\x97");
        return NULL;
    }
    int recompiled = drop_rejected(compiled, compiled_len);
    append(compile(compiled, compiled_len) ? ",\"compiled\":true" : ",\"compiled\":false");
    append(recompiled ? ",\"recompiled\":true}\n" : ",\"recompiled\":false}\n");
    Model *model = calloc(1, sizeof *model);
    if (model == NULL) {
        fail(error, capacity, "out of memory");
        return NULL;
    }
    model->id = next_id++;
    model->fail_predict = memmem(package, package_len, "fail-predict", 12) != NULL;
    model->decline_backings = (flags & DECLINE_OUTPUT_BACKINGS) != 0;
    return model;
}

static size_t element_bytes(uint32_t dtype) { return (dtype & 0xffff) / 8; }

/* Appends a binding as a JSON object; `head` adds its first bytes, read now from its buffer. */
static void append_binding(const Binding *b, int head) {
    char text[96];
    append("{\"name\":");
    append_string((const uint8_t *)b->name, b->name_len);
    snprintf(text, sizeof text, ",\"dtype\":%u,\"shape\":[", b->dtype);
    append(text);
    for (size_t d = 0; d < b->rank; d++) {
        snprintf(text, sizeof text, d == 0 ? "%llu" : ",%llu", (unsigned long long)b->shape[d]);
        append(text);
    }
    snprintf(text, sizeof text, "],\"data\":\"%llu\",\"bytes\":%zu",
             (unsigned long long)(uintptr_t)b->data, b->bytes);
    append(text);
    if (head) {
        /* Hex of the first bytes: the caller's current values, so no copy was taken at bind. */
        append(",\"head\":\"");
        for (size_t k = 0; k < 4 && k < b->bytes; k++) {
            snprintf(text, sizeof text, "%02x", ((const uint8_t *)b->data)[k]);
            append(text);
        }
        append("\"");
    }
    append("}");
}

int32_t llamane_coreml_bind(Model *model, uint32_t side, size_t index, const uint8_t *name,
                            size_t name_len, const uint64_t *shape, size_t rank, uint32_t dtype,
                            void *data, size_t data_bytes, uint8_t *error, size_t capacity) {
    LOCKED;
    char text[96];
    if (model == NULL) return fail(error, capacity, "the model handle is null");
    if (side > 1) return fail(error, capacity, "there is no such side");
    if (index > model->count[side] || index >= MAX_BOUND) {
        return fail(error, capacity, "the index comes before the next one to bind");
    }
    if (name_len >= MAX_NAME || (name_len > 0 && name == NULL)) {
        return fail(error, capacity, "the fake takes names of 1 to 127 bytes");
    }
    if (dtype != FP16 && dtype != FP32 && dtype != INT32) {
        return fail(error, capacity, "unknown dtype");
    }
    if (rank < 1 || rank > MAX_RANK || shape == NULL || ((uintptr_t)shape & 7) != 0) {
        return fail(error, capacity, "a bad rank or shape pointer");
    }
    size_t size = element_bytes(dtype), bytes = size;
    for (size_t d = 0; d < rank; d++) {
        if (shape[d] == 0 || __builtin_mul_overflow(bytes, shape[d], &bytes)) {
            return fail(error, capacity, "a zero or overflowing dimension");
        }
    }
    if (bytes != data_bytes) {
        return fail(error, capacity, "the byte length disagrees with the shape");
    }
    if (data == NULL || (uintptr_t)data % size != 0) {
        return fail(error, capacity, "the buffer is null or misaligned");
    }
    Binding *b = &model->bound[side][index];
    if (name_len > 0) memcpy(b->name, name, name_len);
    b->name_len = name_len;
    b->dtype = dtype;
    memcpy(b->shape, shape, rank * sizeof *shape);
    b->rank = rank;
    b->data = data;
    b->bytes = data_bytes;
    if (index == model->count[side]) model->count[side]++;
    snprintf(text, sizeof text, "{\"call\":\"bind\",\"model\":%d,\"side\":%u,\"index\":%zu,",
             model->id, side, index);
    append(text);
    append("\"tensor\":");
    append_binding(b, 0);
    append("}\n");
    return 0;
}

static void append_side(const Model *model, int side) {
    append("[");
    for (size_t i = 0; i < model->count[side]; i++) {
        if (i > 0) append(",");
        append_binding(&model->bound[side][i], 1);
    }
    append("]");
}

/* fp16 bits of a small positive integer (exact below 2048). */
static uint16_t half_of(unsigned n) {
    unsigned e = 0;
    while ((n >> (e + 1)) != 0) e++;
    return (uint16_t)(((e + 15) << 10) | ((n << (10 - e)) & 0x3ff));
}

int32_t llamane_coreml_predict(const Model *model, uint8_t *error, size_t capacity) {
    LOCKED;
    char text[64];
    if (model == NULL) return fail(error, capacity, "the model handle is null");
    snprintf(text, sizeof text, "{\"call\":\"predict\",\"model\":%d,\"inputs\":", model->id);
    append(text);
    append_side(model, 0);
    append(",\"outputs\":");
    append_side(model, 1);
    append(model->decline_backings ? ",\"copied\":true}\n" : ",\"copied\":false}\n");
    if (model->fail_predict) {
        return fail(error, capacity, "Core ML could not predict: fake failure \xe2\x9c\x97");
    }
    for (size_t i = 0; i < model->count[1]; i++) {
        const Binding *t = &model->bound[1][i];
        size_t size = element_bytes(t->dtype), count = t->bytes / size;
        size_t width = (size_t)t->shape[t->rank - 1], rows = count / width, padded = width + 3;
        /* Declined backings: the values go to an array of the fake's own, rows padded as the
         * Neural Engine pads them, and are copied row by row into the caller's buffer. */
        uint8_t *target = model->decline_backings ? calloc(rows * padded, size) : t->data;
        size_t stride = model->decline_backings ? padded : width;
        if (target == NULL) return fail(error, capacity, "out of memory");
        for (size_t r = 0; r < rows; r++) {
            for (size_t k = 0; k < width; k++) {
                uint8_t *at = target + (r * stride + k) * size;
                if (t->dtype == FP16) *(uint16_t *)at = half_of((unsigned)i + 1);
                else if (t->dtype == FP32) *(float *)at = (float)(i + 1);
                else *(int32_t *)at = (int32_t)(i + 1);
            }
        }
        if (model->decline_backings) {
            for (size_t r = 0; r < rows; r++) {
                memcpy((uint8_t *)t->data + r * width * size, target + r * padded * size,
                       width * size);
            }
            free(target);
        }
    }
    return 0;
}

void llamane_coreml_close(Model *model) {
    LOCKED;
    char text[48];
    if (model == NULL) return;
    snprintf(text, sizeof text, "{\"call\":\"close\",\"model\":%d}\n", model->id);
    append(text);
    free(model);
}

static const char plan_decode[] =
    "const\t\t\tembedding_table\n"
    "gather\tcpu\t0.05\thidden_0\n"
    "linear\tane\t0.6\tq_0\n"
    "softmax\tgpu\t0.1\tattention_0\n"
    "linear\tane\t0.25\tlogits\n";
static const char plan_prefill_extra[] = "gather\tcpu\t\tpositions\n";
static const char plan_uncovered[] =
    "const\t\t\tembedding_table\n"
    "gather\t\t\thidden_0\n"
    "linear\t\t\tlogits\n";

int32_t llamane_coreml_compute_plan(const uint8_t *package, size_t package_len,
                                    const uint8_t *compiled, size_t compiled_len,
                                    const uint8_t *function, size_t function_len, int32_t units,
                                    uint32_t timeout_seconds, uint8_t *text, size_t text_capacity,
                                    uint8_t *error, size_t capacity) {
    LOCKED;
    char plan[512];
    char message[96];
    append("{\"call\":\"compute_plan\",");
    append_open_fields(package, package_len, compiled, compiled_len, function, function_len, units,
                       timeout_seconds);
    snprintf(message, sizeof message, ",\"capacity\":%zu}\n", text_capacity);
    append(message);
    compile(compiled, compiled_len);
    int prefill = function_len == 7 && memcmp(function, "prefill", 7) == 0;
    int huge = function_len == 4 && memcmp(function, "huge", 4) == 0;
    int uncovered = function_len > 0 && memmem(package, package_len, "uncovered", 9) != NULL;
    snprintf(plan, sizeof plan, "%s%s", uncovered ? plan_uncovered : plan_decode,
             prefill && !uncovered ? plan_prefill_extra : "");
    /* "huge" repeats the plan past 1 MiB, so the caller must retry with the size asked for. */
    size_t one = strlen(plan), copies = huge ? (1u << 20) / one + 1 : 1, n = one * copies;
    if (n >= text_capacity) {
        snprintf(message, sizeof message, "the compute plan needs a buffer of %zu bytes", n + 1);
        return fail(error, capacity, message);
    }
    for (size_t i = 0; i < copies; i++) memcpy(text + i * one, plan, one);
    text[n] = 0;
    return 0;
}

/* Test helpers, outside the ABI. */
size_t fake_coreml_log(uint8_t *buffer, size_t capacity) {
    LOCKED;
    if (buffer != NULL && capacity >= log_len) memcpy(buffer, log_text, log_len);
    return log_len;
}

void fake_coreml_reset(void) {
    LOCKED;
    free(log_text);
    log_text = NULL;
    log_len = 0;
}
