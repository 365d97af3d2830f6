/* reqsign bench: turn the JSON lines of one run into bench/results.json and
 * BENCHMARKS.md. Every figure written comes from those lines; nothing else.
 *
 *   bench-report --json OUT.json --md OUT.md --command "CMD" LINES...
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#if BENCH_SODIUM
#include <sodium.h>
#endif

static void die(const char *m)
{
    fprintf(stderr, "bench-report: %s\n", m);
    exit(1);
}

static char *cpuinfo(const char *key)
{
    static char out[256];
    char line[4096];
    FILE *f = fopen("/proc/cpuinfo", "r");
    out[0] = '\0';
    if (f == NULL)
        return out;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, strlen(key)) == 0) {
            char *c = strchr(line, ':');
            if (c != NULL) {
                snprintf(out, sizeof(out), "%s", c + 2);
                out[strcspn(out, "\n")] = '\0';
            }
            break;
        }
    }
    fclose(f);
    return out;
}

/* 1 if /proc/cpuinfo lists CPU flag @flag */
static int has_flag(const char *flag)
{
    char line[8192], pat[64];
    int found = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return 0;
    snprintf(pat, sizeof(pat), " %s", flag);
    while (!found && fgets(line, sizeof(line) - 2, f) != NULL) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        size_t end = strcspn(line, "\n");
        line[end] = ' ';
        line[end + 1] = '\0'; /* fgets read at most sizeof(line) - 3 bytes */
        char *p = strstr(line, pat);
        found = p != NULL && (p[strlen(pat)] == ' ');
        break;
    }
    fclose(f);
    return found;
}

static json_t *machine(const char *command)
{
    struct utsname u;
    char date[64];
    time_t t = time(NULL);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    uname(&u);
    json_t *m = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:b, s:s}", "cpu", cpuinfo("model name"),
                          "cores", (json_int_t)sysconf(_SC_NPROCESSORS_ONLN), "kernel", u.release,
                          "openssl", OpenSSL_version(OPENSSL_VERSION), "date", date, "command",
                          command, "sha_ni", has_flag("sha_ni"), "libsodium",
#if BENCH_SODIUM
                          sodium_version_string()
#else
                          "not built"
#endif
    );
    return m;
}

static double num(json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "";
}

struct miss {
    char text[2048];
};
static struct miss misses[16];
static int n_miss;

static const char *verdict(int ok)
{
    return ok ? "met" : "**missed**";
}

/* The bench-load row of @server at @conns connections; an empty object if
 * there is none (num() of it is 0). */
static json_t *load_row(json_t *results, const char *server, double conns)
{
    static json_t *none;
    size_t i;
    json_t *o;
    json_array_foreach(results, i, o) if (strcmp(str(o, "name"), "e2e_connections") == 0 &&
                                          strcmp(str(o, "server"), server) == 0 &&
                                          num(o, "connections") == conns) return o;
    if (none == NULL)
        none = json_object();
    return none;
}

static void add_miss(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void add_miss(const char *fmt, ...)
{
    if (n_miss >= 16)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(misses[n_miss++].text, sizeof(misses[0].text), fmt, ap);
    va_end(ap);
}

static void results_table(FILE *f, json_t *results)
{
    size_t i;
    json_t *o;
    fprintf(f, "| Measurement | Backend | Figure | Baseline | Baseline figure | Ratio | Target "
               "| Status |\n|---|---|---|---|---|---|---|---|\n");
    json_array_foreach(results, i, o)
    {
        const char *name = str(o, "name"), *be = str(o, "backend");
        if (strcmp(name, "verify_pipeline") == 0) {
            double r = num(o, "ratio");
            fprintf(f,
                    "| verify_pipeline (%.0f requests, median of %.0f rounds) | %s | %.0f/s "
                    "| raw_verify | %.0f/s | %.3f | >= 0.90 | %s |\n",
                    num(o, "requests"), num(o, "rounds"), be, num(o, "per_sec"),
                    num(o, "baseline_per_sec"), r, verdict(r >= 0.90));
            if (r < 0.90) {
                json_t *s = json_object_get(o, "stages_ns");
                add_miss("verify_pipeline (%s): %.3f x raw verify, %.1f%% short of 0.90. The "
                         "pipeline costs %.0f ns per request more than the raw verify "
                         "(%.0f ns): parse %.0f, base %.0f, key lookup %.0f, nonce %.0f, "
                         "digest %.0f, other %.0f ns; the library's signature call takes %.0f ns "
                         "(%.0f ns with a prepared key). Closing it: cut the largest of these "
                         "stages, or make the verify itself faster than the baseline's call.",
                         be, r, (0.90 - r) / 0.90 * 100,
                         num(s, "pipeline_total") - num(s, "raw_verify"), num(s, "raw_verify"),
                         num(s, "parse"), num(s, "base"), num(s, "key_lookup"),
                         num(s, "nonce_insert"), num(s, "digest"), num(s, "other"),
                         num(s, "signature"), num(s, "signature_prepared_key"));
            }
            if (json_object_get(o, "openssl_raw_verify_per_sec") != NULL) {
                double q = num(o, "ratio_vs_openssl_raw");
                fprintf(f,
                        "| verify_pipeline vs OpenSSL | %s | %.0f/s | openssl raw_verify "
                        "| %.0f/s | %.3f | >= 1.6 | %s |\n",
                        be, num(o, "per_sec"), num(o, "openssl_raw_verify_per_sec"), q,
                        verdict(q >= 1.6));
                if (q < 1.6)
                    add_miss("verify_pipeline (%s) vs OpenSSL raw verify: %.3f x, %.1f%% short "
                             "of 1.6. %s raw verify is %.3f x OpenSSL's on this CPU, so the "
                             "pipeline can reach at most that; closing it needs a faster "
                             "Ed25519 verify than %s's (e.g. a vectorised or batch verifier), "
                             "not pipeline work.",
                             be, q, (1.6 - q) / 1.6 * 100, be,
                             num(o, "baseline_per_sec") / num(o, "openssl_raw_verify_per_sec"), be);
            }
        } else if (strcmp(name, "sign") == 0) {
            double r = num(o, "ratio");
            fprintf(f,
                    "| sign (%.0f requests, median of %.0f rounds) | %s | %.0f/s | raw_sign | "
                    "%.0f/s | %.3f | >= 0.90 | %s |\n",
                    num(o, "requests"), num(o, "rounds"), be, num(o, "per_sec"),
                    num(o, "baseline_per_sec"), r, verdict(r >= 0.90));
            /* Not the measure (that one signs exactly the raw side's bases):
             * shown so the cost of a fresh nonce is in the open. */
            double rf = num(o, "ratio_fresh_nonce");
            fprintf(f,
                    "| sign with a fresh random nonce per request (as applications call it; "
                    "bases differ from the raw side's in the nonce) | %s | %.0f/s | raw_sign | "
                    "%.0f/s | %.3f | (info) | - |\n",
                    be, num(o, "fresh_nonce_per_sec"), num(o, "fresh_nonce_baseline_per_sec"), rf);
            if (r < 0.90) {
                json_t *st = json_object_get(o, "stages_ns");
                add_miss("sign (%s): %.3f x raw sign, %.1f%% short of 0.90: %.0f ns per request "
                         "on top of the raw signature (%.0f ns), of which %.0f ns is the "
                         "SHA-256 Content-Digest of the body (0..4 KiB; the raw signature over "
                         "the base does not hash the body) and %.0f ns the rest (URL split, "
                         "Signature-Input, base, base64). The body digest runs at the CPU's "
                         "SHA-256 rate (see the SHA-256 line below); closing the gap means "
                         "cutting the rest further or a faster signature than the backend's "
                         "own call.",
                         be, r, (0.90 - r) / 0.90 * 100, num(st, "extra"), num(st, "raw_sign"),
                         num(st, "body_digest"), num(st, "other"));
            }
        } else if (strcmp(name, "nonce_store_bytes_per_entry") == 0) {
            double v = num(o, "value"), n = num(o, "entries");
            int target = n >= 9.9e6;
            int exact = json_is_true(json_object_get(o, "exact"));
            fprintf(f,
                    "| nonce_store_bytes_per_entry at %.0f entries (exact: %s) | - | %.1f B "
                    "(RSS %.1f, stats %.1f) | - | - | - | %s | %s |\n",
                    n, exact ? "yes" : "NO", v, num(o, "rss_bytes_per_entry"),
                    num(o, "stats_bytes_per_entry"), target ? "<= 48 B, exact" : "(info)",
                    target ? verdict(v <= 48 && exact) : "-");
            if (target && (v > 48 || !exact))
                add_miss("nonce store at %.0f entries: %.1f B per live entry (%.1f%% over 48)%s. "
                         "The table holds %.0f slots of 24 B for %.0f entries (load %.2f); "
                         "closing it: a smaller slot or a higher load factor before growing.",
                         n, v, (v - 48) / 48 * 100, exact ? "" : ", and not exact", num(o, "slots"),
                         n, n / num(o, "slots"));
        } else if (strcmp(name, "nonce_store_ops") == 0) {
            double r = num(o, "per_sec");
            json_t *full = json_object_get(o, "full");
            fprintf(f,
                    "| nonce_store_ops, 1 thread (%.0f check-and-inserts, median of %.0f) | - "
                    "| %.0f/s | - | - | - | >= 2,000,000/s | %s |\n",
                    num(o, "operations"), num(o, "rounds"), r, verdict(r >= 2e6));
            fprintf(f,
                    "| nonce_store_ops, 2 threads | - | %.0f/s | 1 thread | %.0f/s | %.3f | "
                    "(info) | - |\n",
                    num(o, "per_sec_2_threads"), r, num(o, "scaling_2_threads"));
            fprintf(f,
                    "| nonce store full (%.0f max, %.0f offered) | - | %.0f accepted, %.0f "
                    "refused, refusal rate of the excess %.3f | - | - | - | refuse, never "
                    "evict | %s |\n",
                    num(full, "max_entries"), num(full, "offered"), num(full, "accepted"),
                    num(full, "refused"), num(full, "refusal_rate"),
                    verdict(num(full, "evicted") == 0 && num(full, "refusal_rate") == 1.0));
            if (r < 2e6)
                add_miss("nonce store check-and-insert: %.0f/s on one thread, %.1f%% short of "
                         "2,000,000/s (%.0f ns per operation against a 500 ns budget). Each "
                         "operation hashes (keyid, nonce) with SipHash-2-4-128, takes a shard "
                         "lock, probes the table and updates the per-key count (a second hash "
                         "and probe); closing it: one hash for both lookups and fewer cache "
                         "misses per probe.",
                         r, (2e6 - r) / 2e6 * 100, 1e9 / r);
        } else if (strcmp(name, "nonce_store_redis") == 0) {
            if (json_is_true(json_object_get(o, "skipped"))) {
                fprintf(f, "| nonce_store_redis | - | skipped: %s | - | - | - | (info) | - |\n",
                        str(o, "reason"));
                continue;
            }
            fprintf(f,
                    "| nonce_store_redis: latency per verify (%s, %.0f checks, exact: %s) | - "
                    "| %.1f us (p50 %.1f, p99 %.1f) | memory store | %.3f us | %.0f | (info) "
                    "| - |\n",
                    str(o, "transport"), num(o, "operations"),
                    json_is_true(json_object_get(o, "exact")) ? "yes" : "NO", num(o, "redis_us"),
                    num(o, "p50_us"), num(o, "p99_us"), num(o, "memory_us"),
                    num(o, "ratio_vs_memory"));
            fprintf(f,
                    "| nonce_store_redis: throughput, 1 thread / %.0f threads | - | %.0f/s / "
                    "%.0f/s | - | - | - | (info) | - |\n",
                    num(o, "threads"), num(o, "per_sec"), num(o, "per_sec_threads"));
            fprintf(f,
                    "| nonce_store_redis: pipelined, %.0f per round trip | - | %.0f/s | 1 "
                    "round trip each | %.0f/s | %.2f | (info) | - |\n",
                    num(o, "batch"), num(o, "per_sec_pipelined"), num(o, "per_sec"),
                    num(o, "per_sec_pipelined") / num(o, "per_sec"));
        } else if (strcmp(name, "e2e_signed") == 0) {
            double t = num(o, "target_ratio");
            fprintf(f,
                    "| e2e_signed (%.0f requests, 1 keep-alive connection, median of %.0f "
                    "rounds) | %s | %.0f/s (%.1f us/request; p50 %.1f us, p99 %.1f us) | "
                    "e2e_unsigned | %.0f/s (%.1f us; p50 %.1f us, p99 %.1f us) | %.3f | - | "
                    "- |\n",
                    num(o, "requests"), num(o, "rounds"), be, num(o, "per_sec"),
                    num(o, "signed_us"), num(o, "p50_signed_us"), num(o, "p99_signed_us"),
                    num(o, "baseline_per_sec"), num(o, "unsigned_us"), num(o, "p50_unsigned_us"),
                    num(o, "p99_unsigned_us"), num(o, "ratio"));
            fprintf(f,
                    "| e2e: signed / (unsigned + raw verify %.1f us) | %s | %.1f us | "
                    "unsigned + raw verify | %.1f us | %.3f | <= 1.15 | %s |\n",
                    num(o, "raw_verify_us"), be, num(o, "signed_us"),
                    num(o, "unsigned_us") + num(o, "raw_verify_us"), t, verdict(t <= 1.15));
            if (t > 1.15) {
                json_t *one = load_row(results, "api-backend", 1);
                double scpu = num(one, "server_cpu_us"), ucpu = num(one, "unsigned_server_cpu_us");
                double vcpu = num(one, "verifier_cpu_us");
                add_miss("end to end: a signed request takes %.3f x (unsigned + one raw "
                         "verify), %.1f%% over 1.15: %.1f us more than the unsigned request "
                         "plus the raw verify. Why, from bench-load at 1 connection in the "
                         "same run: the server spends %.1f us more CPU on a signed request "
                         "than on an unsigned one, against %.1f us for the whole verifier "
                         "in-process: the verify costs %.1f us more inside the server than in "
                         "the hot loop (likely the caches and branch predictors that the "
                         "network stack takes over between requests; not measured apart). "
                         "The rest of the gap is time in which neither side computes: the "
                         "client sleeps while the server verifies, and on this VM a wake-up "
                         "goes through the hypervisor.",
                         t, (t - 1.15) / 1.15 * 100, num(o, "extra_us"), scpu - ucpu, vcpu,
                         scpu - ucpu - vcpu);
            }
        } else if (strcmp(name, "nginx_signed") == 0) {
            if (json_is_true(json_object_get(o, "skipped"))) {
                fprintf(f,
                        "| nginx + module | - | skipped: %s | - | - | - | <= 1.15; 2 workers >= "
                        "1.7 x 1 | not measured |\n",
                        str(o, "reason"));
                continue;
            }
            double w = num(o, "workers"), t = num(o, "target_ratio");
            int target = w == 1; /* with one connection the second worker idles: information */
            fprintf(f,
                    "| nginx_signed (%.0f worker%s, %.0f requests, 1 keep-alive connection, median "
                    "of %.0f rounds) | %s | %.0f/s (%.1f us/request; p50 %.1f us, p99 %.1f us) | "
                    "nginx unsigned location | %.0f/s (%.1f us; p50 %.1f us, p99 %.1f us) | %.3f "
                    "| - | - |\n",
                    w, w == 1 ? "" : "s", num(o, "requests"), num(o, "rounds"), be,
                    num(o, "per_sec"), num(o, "signed_us"), num(o, "p50_signed_us"),
                    num(o, "p99_signed_us"), num(o, "baseline_per_sec"), num(o, "unsigned_us"),
                    num(o, "p50_unsigned_us"), num(o, "p99_unsigned_us"),
                    num(o, "baseline_per_sec") / num(o, "per_sec"));
            fprintf(f,
                    "| nginx (%.0f worker%s): signed / (unsigned + raw verify %.1f us); rounds "
                    "%.3f..%.3f | %s | %.1f us | unsigned + raw verify | %.1f us | %.3f | %s | %s "
                    "|\n",
                    w, w == 1 ? "" : "s", num(o, "raw_verify_us"), num(o, "target_ratio_min"),
                    num(o, "target_ratio_max"), be, num(o, "signed_us"),
                    num(o, "unsigned_us") + num(o, "raw_verify_us"), t,
                    target ? "<= 1.15" : "(info)", target ? verdict(t <= 1.15) : "-");
            if (target && t > 1.15)
                add_miss("nginx: a signed request through the module takes %.3f x (unsigned "
                         "location + one raw verify), %.1f%% over 1.15 (rounds %.3f..%.3f): "
                         "%.1f us more than the unsigned request (%.1f us) plus the raw verify "
                         "(%.1f us). nginx's CPU per request in the same run: %.1f us signed, "
                         "%.1f us unsigned, so the module costs nginx %.1f us of CPU against "
                         "%.1f us for the raw verify (%+.1f us); the other %.1f us of "
                         "the gap is wall time that nginx's CPU does not account for (the "
                         "client's and nginx's wake-ups, other tenants of this machine).",
                         t, (t - 1.15) / 1.15 * 100, num(o, "target_ratio_min"),
                         num(o, "target_ratio_max"), num(o, "extra_us"), num(o, "unsigned_us"),
                         num(o, "raw_verify_us"), num(o, "server_cpu_us"),
                         num(o, "unsigned_server_cpu_us"),
                         num(o, "server_cpu_us") - num(o, "unsigned_server_cpu_us"),
                         num(o, "raw_verify_us"),
                         num(o, "server_cpu_us") - num(o, "unsigned_server_cpu_us") -
                             num(o, "raw_verify_us"),
                         num(o, "extra_us") -
                             (num(o, "server_cpu_us") - num(o, "unsigned_server_cpu_us") -
                              num(o, "raw_verify_us")));
        } else if (strcmp(name, "nginx_workers") == 0) {
            double sc = num(o, "scaling");
            char rounds[512] = "";
            size_t used = 0, k;
            json_t *v;
            json_array_foreach(json_object_get(o, "scaling_rounds"), k, v)
            {
                int n = snprintf(rounds + used, sizeof(rounds) - used, "%s%.3f", k ? ", " : "",
                                 json_number_value(v));
                if (n < 0 || (size_t)n >= sizeof(rounds) - used)
                    break;
                used += (size_t)n;
            }
            fprintf(f,
                    "| nginx signed throughput, 2 workers / 1 worker (%.0f connections, %.0f "
                    "requests, median of %.0f rounds; per round: %s) | %s | %.0f/s (unsigned "
                    "%.0f/s) | 1 worker | %.0f/s (unsigned %.0f/s) | %.3f | >= 1.7 | %s |\n",
                    num(o, "connections"), num(o, "requests"), num(o, "rounds"), rounds, be,
                    num(o, "per_sec_2_workers"), num(o, "unsigned_per_sec_2_workers"),
                    num(o, "per_sec_1_worker"), num(o, "unsigned_per_sec_1_worker"), sc,
                    verdict(sc >= 1.7));
            if (sc < 1.7) {
                double cores = (double)sysconf(_SC_NPROCESSORS_ONLN);
                double per = num(o, "server_cpu_us_2_workers") + num(o, "client_cpu_us_2_workers");
                double ceiling = cores / (per / 1e6), one = num(o, "per_sec_1_worker");
                char busy[256] = "";
                used = 0;
                json_array_foreach(json_object_get(o, "busiest_process_share_2_workers_rounds"), k,
                                   v)
                {
                    int n = snprintf(busy + used, sizeof(busy) - used, "%s%.2f", k ? ", " : "",
                                     json_number_value(v));
                    if (n < 0 || (size_t)n >= sizeof(busy) - used)
                        break;
                    used += (size_t)n;
                }
                add_miss("nginx: 2 workers give %.3f x one worker's signed throughput, %.1f%% "
                         "short of 1.7 (rounds %.3f..%.3f). From the same run: with 2 workers "
                         "nginx used %.2f cores (1 worker: %.2f), %.1f us of CPU per request, "
                         "and the load generator %.1f us, on %.0f cores shared by both: a CPU "
                         "ceiling of %.0f/s = %.3f x the 1-worker rate. %s The busiest nginx "
                         "process's share of nginx's CPU per round with 2 workers: %s (0.50: "
                         "an even spread; reuseport spreads connections by hash).",
                         sc, (1.7 - sc) / 1.7 * 100, num(o, "scaling_min"), num(o, "scaling_max"),
                         num(o, "server_cores_2_workers"), num(o, "server_cores_1_worker"),
                         num(o, "server_cpu_us_2_workers"), num(o, "client_cpu_us_2_workers"),
                         cores, ceiling, ceiling / one,
                         ceiling / one < 1.7
                             ? "The ceiling is below 1.7 x: the load generator shares the "
                               "cores, so this machine cannot show the target; a core kept "
                               "for the load generator (or a second machine) would."
                             : "The ceiling is above 1.7 x, so CPU work alone does not explain it; "
                               "likely nginx did not get the cores (other tenants of this "
                               "machine) or the connections were spread unevenly over the "
                               "workers (the shares below).",
                         busy);
            }
        } else if (strcmp(name, "key_lookup") == 0) {
            fprintf(f,
                    "| key_lookup: cache hit (%.0f keys) | %s | %.0f/s (%.0f ns) | "
                    "miss (SQLite) | %.0f/s (%.0f ns; store get alone %.0f ns) | %.1f | (info) "
                    "| - |\n",
                    num(o, "keys"), be, num(o, "per_sec"), num(o, "hit_ns"),
                    num(o, "baseline_per_sec"), num(o, "miss_ns"), num(o, "store_get_ns"),
                    num(o, "ratio"));
        }
    }
}

/* bench-load: one row per connection count, with the targets of the
 * end-to-end performance work (issue: api-backend on every core). */
static void connections_table(FILE *f, json_t *results)
{
    size_t i;
    json_t *o;
    fprintf(
        f,
        "| server | connections | signed/s | p50 / p99 us | server CPU us/req | load generator CPU "
        "us/req | unsigned/s (p50 / p99 us) | verifier in-process 1 thread / 2 threads "
        "/s | signed / verifier 2 threads | signed/s per round |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n");
    json_array_foreach(results, i, o)
    {
        if (strcmp(str(o, "name"), "e2e_connections") != 0)
            continue;
        char rounds[512] = "";
        size_t used = 0, k;
        json_t *v;
        json_array_foreach(json_object_get(o, "signed_per_sec_rounds"), k, v)
        {
            int w = snprintf(rounds + used, sizeof(rounds) - used, "%s%.0f", k ? ", " : "",
                             json_number_value(v));
            if (w < 0 || (size_t)w >= sizeof(rounds) - used)
                break;
            used += (size_t)w;
        }
        double c = num(o, "connections"), ratio = num(o, "ratio");
        double cpu = num(o, "server_cpu_us"), vcpu = num(o, "verifier_cpu_us");
        double p50 = num(o, "p50_us"), p99 = num(o, "p99_us");
        fprintf(f,
                "| %s | %.0f | %.0f | %.0f / %.0f | %.1f | %.1f | %.0f (%.0f / %.0f) | %.0f / "
                "%.0f | %.3f | %s |\n",
                str(o, "server"), c, num(o, "per_sec"), p50, p99, cpu, num(o, "client_cpu_us"),
                num(o, "unsigned_per_sec"), num(o, "unsigned_p50_us"), num(o, "unsigned_p99_us"),
                num(o, "verifier_1_thread_per_sec"), num(o, "baseline_per_sec"), ratio, rounds);
        if (strcmp(str(o, "server"), "api-backend") != 0)
            continue; /* the targets are the api-backend's; reqsignd's rows are information */
        /* what the CPUs allow: the server and the load generator share the
         * machine's cores, so no run can exceed cores / (server + load
         * generator CPU per request) */
        double cores = (double)sysconf(_SC_NPROCESSORS_ONLN);
        double ceiling = cores / ((cpu + num(o, "client_cpu_us")) / 1e6);
        double base = num(o, "baseline_per_sec"), unsigned_cpu = num(o, "unsigned_server_cpu_us");
        if ((c == 4 || c == 16) && ratio < 0.75)
            add_miss("%.0f connections: signed throughput is %.3f x the in-process verifier's "
                     "2-thread rate (target >= 0.75), %.0f%% short. Why: the server (%.1f us) "
                     "and the load generator (%.1f us) spend %.1f us of CPU per request between "
                     "them on %.0f cores, a ceiling of %.0f/s = %.3f x the verifier's 2-thread "
                     "rate in this run, before any wait; the server reached %.2f cores. Of the "
                     "server's %.1f us, an unsigned request (the same HTTP, no verify) costs "
                     "%.1f us in the same run: that is the floor of HTTP and loopback TCP on "
                     "this VM, where system calls and wake-ups go through the hypervisor "
                     "(`bench/profile.sh` shows where the server's samples fall).",
                     c, ratio, (0.75 - ratio) / 0.75 * 100, cpu, num(o, "client_cpu_us"),
                     cpu + num(o, "client_cpu_us"), cores, ceiling, ceiling / base,
                     num(o, "server_cores"), cpu, unsigned_cpu);
        if (c == 4 && cpu > vcpu + 15)
            add_miss("server CPU per signed request at 4 connections is %.1f us against %.1f us "
                     "for the in-process verify (target: at most 15 us more; %.1f us more). "
                     "Why: the same server answering the unsigned route (no verify, the same "
                     "HTTP parsing, echo and log) spends %.1f us per request in this run, more "
                     "than the 15 us the target leaves for everything but the verify; the "
                     "verify itself costs the server %.1f us (signed minus unsigned), %.1f us "
                     "more than in the in-process loop, whose caches stay warm.",
                     cpu, vcpu, cpu - vcpu, unsigned_cpu, cpu - unsigned_cpu,
                     cpu - unsigned_cpu - vcpu);
        if (c == 16 && p99 > 3 * p50)
            add_miss("16 connections: p99 %.0f us is %.1f x p50 %.0f us (target <= 3 x).", p99,
                     p99 / p50, p50);
        if (c == 2) {
            size_t k2;
            json_t *b;
            int lone = 0;
            json_array_foreach(json_object_get(o, "busy_threads_rounds"), k2,
                               b) if (json_integer_value(b) < 2) lone++;
            if (lone > 0)
                add_miss("2 connections: in %d of %.0f rounds fewer than 2 server threads were "
                         "busy (target: none).",
                         lone, num(o, "rounds"));
        }
    }
}

/* How the server used the cores in the signed runs of bench-load. */
static void cores_table(FILE *f, json_t *results)
{
    size_t i;
    json_t *o;
    fprintf(f, "| server | connections | server CPU, cores (median) | busiest thread, share of a "
               "core | server threads busy per round | CPU ceiling: cores / (server + load "
               "generator CPU per request) | ceiling / verifier 2 threads |\n"
               "|---|---|---|---|---|---|---|\n");
    json_array_foreach(results, i, o)
    {
        if (strcmp(str(o, "name"), "e2e_connections") != 0)
            continue;
        char busy[256] = "";
        size_t used = 0, k;
        json_t *v;
        json_array_foreach(json_object_get(o, "busy_threads_rounds"), k, v)
        {
            int w = snprintf(busy + used, sizeof(busy) - used, "%s%lld", k ? ", " : "",
                             (long long)json_integer_value(v));
            if (w < 0 || (size_t)w >= sizeof(busy) - used)
                break;
            used += (size_t)w;
        }
        double cores = (double)sysconf(_SC_NPROCESSORS_ONLN);
        double ceiling = cores / ((num(o, "server_cpu_us") + num(o, "client_cpu_us")) / 1e6);
        fprintf(f, "| %s | %.0f | %.2f | %.2f | %s | %.0f/s | %.3f |\n", str(o, "server"),
                num(o, "connections"), num(o, "server_cores"), num(o, "top_thread_share"), busy,
                ceiling, ceiling / num(o, "baseline_per_sec"));
    }
}

static void sign_table(FILE *f, json_t *results)
{
    size_t i;
    json_t *o;
    static const char *const keys[] = {"raw_sign", "extra", "body_digest", "other"};
    static const char *const what[] = {
        "raw sign baseline (backend's own call)",
        "reqsign_signer_sign() beyond the raw sign (from the ratio)",
        "of which: Content-Digest of the body (SHA-256, timed alone)",
        "of which: the rest (URL split, Signature-Input, base, base64)"};
    fprintf(f, "| Sign (ns per request, median of rounds) |");
    json_array_foreach(results, i, o) if (strcmp(str(o, "name"), "sign") == 0)
        fprintf(f, " %s |", str(o, "backend"));
    fprintf(f, "\n|---|");
    json_array_foreach(results, i, o) if (strcmp(str(o, "name"), "sign") == 0) fprintf(f, "---|");
    fprintf(f, "\n");
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        fprintf(f, "| %s |", what[k]);
        json_array_foreach(results, i, o) if (strcmp(str(o, "name"), "sign") == 0)
            fprintf(f, " %.0f |", num(json_object_get(o, "stages_ns"), keys[k]));
        fprintf(f, "\n");
    }
}

static void stages_table(FILE *f, json_t *results)
{
    size_t i;
    json_t *o;
    static const char *const keys[] = {
        "parse",        "base",   "key_lookup", "signature", "signature_prepared_key",
        "nonce_insert", "digest", "raw_verify", "other",     "pipeline_total"};
    static const char *const what[] = {
        "parse Signature-Input and Signature (sf dictionaries)",
        "build the signature base",
        "key lookup (key cache hit, SQLite behind it)",
        "Ed25519 verify as reqsign_ed25519_verify() (raw 32-byte key)",
        "Ed25519 verify with a prepared key (reqsign_key_verify())",
        "nonce check-and-insert (in-memory store)",
        "Content-Digest parse + SHA-256 of the body + compare",
        "raw verify baseline (backend's own call)",
        "other: pipeline total minus the stages above and the raw verify",
        "pipeline total"};
    fprintf(f, "| Stage (ns per request, best of rounds) |");
    json_array_foreach(results, i, o) if (strcmp(str(o, "name"), "verify_pipeline") == 0)
        fprintf(f, " %s |", str(o, "backend"));
    fprintf(f, "\n|---|");
    json_array_foreach(results, i, o) if (strcmp(str(o, "name"), "verify_pipeline") == 0)
        fprintf(f, "---|");
    fprintf(f, "\n");
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        fprintf(f, "| %s |", what[k]);
        json_array_foreach(results, i, o) if (strcmp(str(o, "name"), "verify_pipeline") == 0)
            fprintf(f, " %.0f |", num(json_object_get(o, "stages_ns"), keys[k]));
        fprintf(f, "\n");
    }
    fprintf(f, "| SHA-256 of 4 KiB, MB/s |");
    json_array_foreach(results, i, o) if (strcmp(str(o, "name"), "verify_pipeline") == 0)
        fprintf(f, " %.0f |", num(o, "sha256_4k_MBps"));
    fprintf(f, "\n");
}

int main(int argc, char **argv)
{
    const char *out_json = NULL, *out_md = NULL, *command = "./dev.sh bench";
    json_t *results = json_array();
    int i;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
            out_json = argv[++i];
        else if (strcmp(argv[i], "--md") == 0 && i + 1 < argc)
            out_md = argv[++i];
        else if (strcmp(argv[i], "--command") == 0 && i + 1 < argc)
            command = argv[++i];
        else {
            FILE *f = fopen(argv[i], "r");
            char line[65536];
            if (f == NULL)
                die("cannot read an input file");
            while (fgets(line, sizeof(line), f) != NULL) {
                if (line[0] != '{')
                    continue;
                json_t *o = json_loads(line, 0, NULL);
                if (o == NULL)
                    die("bad JSON line");
                json_array_append_new(results, o);
            }
            fclose(f);
        }
    }
    if (out_json == NULL || out_md == NULL)
        die("usage: bench-report --json OUT --md OUT [--command CMD] LINES...");
    json_t *m = machine(command);
    json_t *doc = json_pack("{s:O, s:O}", "machine", m, "results", results);
    if (json_dump_file(doc, out_json, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) != 0)
        die("cannot write the JSON file");

    FILE *f = fopen(out_md, "w");
    if (f == NULL)
        die("cannot write the Markdown file");
    fprintf(f,
            "# reqsign benchmarks\n\n"
            "Generated by `%s` on %s; this file and `bench/results.json` are rewritten by "
            "every run (do not edit by hand). Every figure below was produced by `bench/` "
            "in that run.\n\n",
            str(m, "command"), str(m, "date"));
    fprintf(f,
            "## Machine\n\n| | |\n|---|---|\n| CPU | %s |\n| Cores (online) | %.0f |\n"
            "| SHA-NI | %s |\n| Kernel | %s |\n| OpenSSL | %s |\n| libsodium | %s |\n\n",
            str(m, "cpu"), num(m, "cores"),
            json_is_true(json_object_get(m, "sha_ni")) ? "yes" : "no", str(m, "kernel"),
            str(m, "openssl"), str(m, "libsodium"));
    fprintf(f, "## Results\n\n");
    results_table(f, results);
    fprintf(f, "\n## End to end on several connections\n\n"
               "`bench-load`: C keep-alive connections, one request in flight on each (epoll), "
               "distinct pre-signed requests, every status checked (and a few replays that must "
               "get 401); the in-process verifier over the same requests on 1 and 2 threads "
               "is the baseline. Medians over rounds; the last column is each round's signed "
               "rate (the spread). reqsignd: the signed requests are `GET /v1/keys/<own keyid>` "
               "(a store read behind the verify) and the unsigned ones `GET /healthz`; its "
               "rows are information, the targets are the api-backend's.\n\n");
    connections_table(f, results);
    fprintf(f, "\nHow the server used the cores in the signed runs (threads busy: on a CPU for at "
               "least a tenth of the run; two connections that share one worker leave one "
               "busy):\n\n");
    cores_table(f, results);
    fprintf(f, "\n## Verify pipeline, stage by stage\n\n"
               "Each stage timed alone over the same requests (so the sum is not exactly the "
               "pipeline); `other` is what the pipeline spends beyond them: copying results, "
               "selecting the signature, checking required components, error bookkeeping, and "
               "cache misses on request data that the stages, run one at a time, take in "
               "turns. A diagnosis rather than a target: every figure here is the best "
               "(lowest) of its rounds, the least disturbed by other tenants, so that they "
               "compare; the ratios above are medians.\n\n");
    stages_table(f, results);
    fprintf(f, "\n## Sign, where the time goes\n\n");
    sign_table(f, results);
    fprintf(f, "\n## Missed targets\n\n");
    if (n_miss == 0)
        fprintf(f, "None in this run.\n");
    for (i = 0; i < n_miss; i++)
        fprintf(f, "- %s\n", misses[i].text);
    fprintf(f,
            "\n## Method\n\n"
            "- `bench-crypto` (once per Ed25519 backend: `bench/run.sh` builds a second release "
            "directory with `-Dcrypto_backend=openssl`): N distinct requests pre-signed (distinct "
            "nonces, paths and queries; bodies 0..4096 bytes; 16 keys in a SQLite key store "
            "behind the real key cache, warmed). Each round verifies all N through "
            "`reqsign_verifier_verify_headers()` + `_body()` + `_finish()` (fresh nonce store and "
            "verifier per round, made outside the timing) and the raw verify of the same "
            "signature bases and signatures with the backend's own best call (libsodium: "
            "`crypto_sign_ed25519_verify_detached`; OpenSSL: `EVP_DigestVerify` with an "
            "`EVP_PKEY` made once per key), alternating in chunks of 250 requests (and which "
            "side goes first in each chunk), so that drift of a shared machine falls on both "
            "sides of the ratio alike. A round's ratio is its two totals; the figure is the "
            "median over rounds. Signing: `reqsign_signer_sign()` on the same inputs (same "
            "nonce, so the same bases) vs the raw sign of those bases, interleaved the same "
            "way; then, in separate passes of the same rounds, the signer with a fresh random "
            "nonce per request (as applications call it) against the raw sign again.\n"
            "- `bench-nonce`: RSS delta from `/proc/self/statm` and the store's own byte count, "
            "per live entry (the larger is reported); every pair is checked again afterwards "
            "(exact: all must be replays).\n"
            "- `bench-e2e`: the `api-backend` example on 127.0.0.1 with a fresh key store; a "
            "raw-socket client sends the pre-signed requests over one keep-alive connection, one "
            "in flight, alternating chunks of signed requests and the same requests to "
            "`/unsigned/...` (served unverified only with `--bench-unsigned-route`, which "
            "bench-e2e passes); the raw verify of the same bases is timed between them.\n"
            "- `bench-load` reads the server's CPU from `/proc/PID/task/*/schedstat` "
            "(nanoseconds, every thread) and its own from getrusage; a thread is busy when it "
            "was on a CPU for at least a tenth of the run. `bench/profile.sh BUILD_DIR "
            "[api-backend|reqsignd] [CONNECTIONS] [SECONDS]` samples the server with perf under "
            "the same load and prints where its CPU goes (not part of this file: perf's "
            "attribution on a VM is rough, so its shares are a diagnosis, not figures).\n"
            "- `bench-load --nginx`: Debian's `/usr/sbin/nginx` with `ngx_http_reqsign_module.so`, "
            "started twice side by side with a generated configuration on loopback ports "
            "(1 worker and 2 workers, `listen ... reuseport`): a signed location (`reqsign on`, "
            "the SQLite key store, the shared nonce zone) and an unsigned one (`reqsign off`) of "
            "the same server, both proxying over upstream keep-alive to a second server block "
            "of the same nginx that answers `return 200`. Each round sends the same fresh "
            "block of pre-signed requests to both instances in turns (their nonce zones are "
            "their own), signed and then unsigned or the reverse: over one keep-alive "
            "connection (time per request; the raw verify of the same bases is timed in this "
            "process in the same round) and over C connections (throughput), plus a few "
            "replays that must get 401. The ratios are medians of per-round ratios; the "
            "per-round values are the spread.\n"
            "- The machine is shared: other processes may be running. Compare ratios (measured "
            "interleaved, same run) rather than absolute rates.\n"
            "- Against other RFC 9421 implementations (JavaScript libraries, dev-time, needs "
            "node): `bench/compare/run.sh` writes `bench/compare/RESULTS.md`.\n");
    fclose(f);
    json_decref(doc);
    json_decref(m);
    json_decref(results);
    return 0;
}
