// The shared revocation tier's round trips on localhost (issue 14), against the
// anchor of the same bytes fetched over HTTP from nginx (what a host pays the
// CDP without the tier), in one run:
//   BM_HttpGet/N          anchor: libcurl GET of an N-byte file from nginx
//   BM_RedisGet/N         hiredis GET of an N-byte value (a blob's DER)
//   BM_HttpConditional    anchor: GET with If-None-Match, answered 304
//   BM_RedisMeta          hiredis HMGET of a blob's small fields + HSTRLEN der:
//                         what a host pays to learn that nothing is new
// N = 1 MiB (a CRL of ~30,000 entries) and 35 MB (the 1,000,000-entry CRL).
// Wall time (the work is in the servers and the kernel).
//
// Usage (tests/bench/fleet_bench.sh starts the servers):
//   certgate_bench_shared_cache --redis-port P --http URL_PREFIX --docroot DIR [benchmark flags]
// DIR/blob-<N> must exist and be served as URL_PREFIX/blob-<N>.
#include <benchmark/benchmark.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

namespace {

struct Config {
  int redis_port = 0;
  std::string http, docroot;
} g_config;

struct RedisFree {
  void operator()(redisContext *c) const { redisFree(c); }
};
struct ReplyFree {
  void operator()(redisReply *r) const { freeReplyObject(r); }
};
using Redis = std::unique_ptr<redisContext, RedisFree>;
using Reply = std::unique_ptr<redisReply, ReplyFree>;

Redis Connect() {
  Redis c(redisConnect("127.0.0.1", g_config.redis_port));
  if (!c || c->err) return nullptr;
  return c;
}

std::string ReadAll(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string BlobName(int64_t size) { return "blob-" + std::to_string(size); }

// Puts the docroot's blob into Redis as the string certgate:bench:<N> and as
// the der field of the hash certgate:bench:h:<N> (with the small fields a
// published blob has). False on any error.
bool Seed(redisContext *c, int64_t size) {
  const std::string blob = ReadAll(g_config.docroot + "/" + BlobName(size));
  if (static_cast<int64_t>(blob.size()) != size) return false;
  const std::string key = "certgate:bench:" + std::to_string(size);
  Reply set(static_cast<redisReply *>(
      redisCommand(c, "SET %s %b", key.c_str(), blob.data(), blob.size())));
  Reply hset(static_cast<redisReply *>(redisCommand(
      c,
      "HSET certgate:bench:h:%lld der %b this_update 1796000000 checked_at 1796000000 etag %s "
      "last_modified %s url %s host %s format 1",
      static_cast<long long>(size), blob.data(), blob.size(), "\"5f1e-635a\"",
      "Sun, 06 Dec 2026 09:00:00 GMT", "http://pki.example/issuing.crl", "web-0042:1234:abcd")));
  return set && set->type == REDIS_REPLY_STATUS && hset && hset->type == REDIS_REPLY_INTEGER;
}

// Redis's own CPU so far (INFO cpu: used_cpu_user + used_cpu_sys), in ms; -1
// when unknown. Its difference over a benchmark, per operation, is what the
// server pays, apart from the client and the kernel's copy to it.
double RedisCpuMs(redisContext *c) {
  Reply r(static_cast<redisReply *>(redisCommand(c, "INFO cpu")));
  if (!r || r->type != REDIS_REPLY_STRING) return -1;
  const std::string info(r->str, r->len);
  double total = 0;
  for (const char *field : {"used_cpu_user:", "used_cpu_sys:"}) {
    const size_t at = info.find(field);
    if (at == std::string::npos) return -1;
    total += std::atof(info.c_str() + at + strlen(field));
  }
  return total * 1000;
}

void CountRedisCpu(benchmark::State &state, double before_ms, double after_ms) {
  if (before_ms >= 0 && after_ms >= 0 && state.iterations() > 0) {
    state.counters["redis_cpu_ms"] =
        (after_ms - before_ms) / static_cast<double>(state.iterations());
  }
}

void BM_RedisGet(benchmark::State &state) {
  Redis c = Connect();
  if (!c || !Seed(c.get(), state.range(0))) {
    state.SkipWithError("Redis not reachable or blob missing");
    return;
  }
  const std::string key = "certgate:bench:" + std::to_string(state.range(0));
  const double cpu_before = RedisCpuMs(c.get());
  for (auto _ : state) {
    Reply r(static_cast<redisReply *>(redisCommand(c.get(), "GET %s", key.c_str())));
    if (!r || r->type != REDIS_REPLY_STRING || static_cast<int64_t>(r->len) != state.range(0)) {
      state.SkipWithError("GET failed");
      return;
    }
  }
  CountRedisCpu(state, cpu_before, RedisCpuMs(c.get()));
  state.SetBytesProcessed(state.iterations() * state.range(0));
}

void BM_RedisMeta(benchmark::State &state) {
  Redis c = Connect();
  if (!c || !Seed(c.get(), state.range(0))) {
    state.SkipWithError("Redis not reachable or blob missing");
    return;
  }
  const std::string key = "certgate:bench:h:" + std::to_string(state.range(0));
  const double cpu_before = RedisCpuMs(c.get());
  for (auto _ : state) {
    // Pipelined, as the core sends them: one round trip.
    redisAppendCommand(
        c.get(), "HMGET %s this_update checked_at etag last_modified url host format", key.c_str());
    redisAppendCommand(c.get(), "HSTRLEN %s der", key.c_str());
    void *a = nullptr, *b = nullptr;
    const bool ok =
        redisGetReply(c.get(), &a) == REDIS_OK && redisGetReply(c.get(), &b) == REDIS_OK;
    Reply ra(static_cast<redisReply *>(a)), rb(static_cast<redisReply *>(b));
    if (!ok || !ra || ra->type != REDIS_REPLY_ARRAY || !rb ||
        rb->integer != static_cast<long long>(state.range(0))) {
      state.SkipWithError("HMGET failed");
      return;
    }
  }
  CountRedisCpu(state, cpu_before, RedisCpuMs(c.get()));
}

size_t Count(char *, size_t size, size_t n, void *total) {
  *static_cast<size_t *>(total) += size * n;
  return size * n;
}

// One libcurl handle (kept-alive connection, as the fetcher's) per benchmark.
void HttpLoop(benchmark::State &state, const std::string &url, bool conditional) {
  CURL *curl = curl_easy_init();
  size_t total = 0;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Count);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &total);
  std::string etag;
  curl_slist *headers = nullptr;
  if (conditional) {
    // The first GET learns the ETag; every later one asks If-None-Match.
    curl_easy_perform(curl);
    curl_header *h = nullptr;
    if (curl_easy_header(curl, "ETag", 0, CURLH_HEADER, -1, &h) == CURLHE_OK) etag = h->value;
    headers = curl_slist_append(headers, ("If-None-Match: " + etag).c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  }
  const long want = conditional ? 304 : 200;
  for (auto _ : state) {
    total = 0;
    long code = 0;
    if (curl_easy_perform(curl) != CURLE_OK ||
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK || code != want) {
      state.SkipWithError("HTTP GET failed");
      break;
    }
  }
  if (!conditional) state.SetBytesProcessed(state.iterations() * state.range(0));
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
}

void BM_HttpGet(benchmark::State &state) {
  HttpLoop(state, g_config.http + "/" + BlobName(state.range(0)), false);
}

void BM_HttpConditional(benchmark::State &state) {
  HttpLoop(state, g_config.http + "/" + BlobName(state.range(0)), true);
}

constexpr int64_t kMiB = 1 << 20;
constexpr int64_t k35MB = 35000000;

BENCHMARK(BM_HttpGet)->Arg(kMiB)->Arg(k35MB)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RedisGet)->Arg(kMiB)->Arg(k35MB)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_HttpConditional)->Arg(kMiB)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RedisMeta)->Arg(kMiB)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char **argv) {
  // Our flags first; the rest is Google Benchmark's.
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--redis-port" && i + 1 < argc) {
      g_config.redis_port = std::atoi(argv[++i]);
    } else if (arg == "--http" && i + 1 < argc) {
      g_config.http = argv[++i];
    } else if (arg == "--docroot" && i + 1 < argc) {
      g_config.docroot = argv[++i];
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  if (g_config.redis_port == 0 || g_config.http.empty() || g_config.docroot.empty()) {
    fprintf(stderr,
            "usage: %s --redis-port P --http URL_PREFIX --docroot DIR [benchmark flags]\n"
            "(tests/bench/fleet_bench.sh starts the servers)\n",
            argv[0]);
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  curl_global_cleanup();
  return 0;
}
