// Revocation cache benchmarks (issue 5 item 8): ingest of a 1,000,000-entry CRL
// (time and peak RSS, measured in a fresh child process so the generator's memory
// does not count), its replacement by the next CRL, and the lookup cost in it
// (the store's two gets, and the whole RevocationChecker::Check of a leaf).
//
//   certgate_bench_revocation                      # all
//   certgate_bench_revocation --ingest DIR CRL CA  # (internal) one ingest, see IngestChild
#include <benchmark/benchmark.h>
#include <certgate/clock.h>
#include <certgate/ossl_ptr.h>
#include <certgate/policy.h>
#include <certgate/revocation.h>
#include <openssl/pem.h>
#include <pki_builder.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "large_crl.h"
#include "revocation/crl.h"
#include "revocation/store.h"

namespace {

using namespace certgate;
using Clock = std::chrono::steady_clock;

constexpr int64_t kNow = 1800000000;
constexpr int kEntries = 1000000;

std::string ReadAll(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string SerialBytes(uint64_t i) { return bench::LargeCrlSerial(i); }

struct Fixture {
  std::string dir;
  std::string crl_path, crl2_path, ca_path;
  std::unique_ptr<pki::PkiBuilder> pki;
  pki::Issued root, ca;
  size_t crl_bytes = 0;
  double generate_s = 0;
};

std::string MakeCrl(const pki::Issued &ca, int64_t number, size_t *bytes) {
  bench::LargeCrlSpec spec;
  spec.entries = kEntries;
  spec.first = static_cast<uint64_t>(number) * 7;
  spec.number = number;
  spec.this_update = kNow - 3600;
  spec.next_update = kNow + 7 * 86400;
  std::string der = bench::MakeLargeCrl(ca, spec);
  *bytes = der.size();
  return der;
}

Fixture &Get() {
  static Fixture *f = [] {
    auto *fx = new Fixture();
    char tmpl[] = "/tmp/certgate-bench-rev-XXXXXX";
    fx->dir = mkdtemp(tmpl);
    fx->pki = std::make_unique<pki::PkiBuilder>(kNow);
    fx->root = fx->pki->SelfSigned(pki::PkiBuilder::CaSpec("CN=Bench Root"));
    fx->ca = fx->pki->Issue(fx->root, pki::PkiBuilder::CaSpec("CN=Bench Issuing CA"));
    auto start = Clock::now();
    fx->crl_path = fx->dir + "/big.crl";
    fx->crl2_path = fx->dir + "/big2.crl";
    pki::WriteFile(fx->crl_path, MakeCrl(fx->ca, 1, &fx->crl_bytes));
    size_t ignored = 0;
    pki::WriteFile(fx->crl2_path, MakeCrl(fx->ca, 2, &ignored));
    fx->generate_s = std::chrono::duration<double>(Clock::now() - start).count();
    fx->ca_path = fx->dir + "/ca.pem";
    pki::WriteFile(fx->ca_path, fx->ca.Pem());
    return fx;
  }();
  return *f;
}

// This process's resident anonymous memory, kB (/proc/self/status RssAnon).
long RssAnonKb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("RssAnon:", 0) == 0) return std::stol(line.substr(8));
  }
  return -1;
}

// One ingest in a fresh process: "seconds peak_rss_kb entries retained_anon_kb"
// (the anonymous memory still resident once the parsed CRL is released: what a
// worker that ingested keeps), or an error line.
int IngestChild(const std::string &dir, const std::string &crl_path, const std::string &ca_path) {
  FILE *ca_file = fopen(ca_path.c_str(), "r");
  ossl::UniquePtr<X509> ca(PEM_read_X509(ca_file, nullptr, nullptr, nullptr));
  fclose(ca_file);
  auto store = RevocationStore::Open(dir);
  if (!store.ok()) return printf("error %s\n", store.status().message().c_str()), 1;
  auto start = Clock::now();
  unsigned long long entries = 0;
  {
    auto parsed = ParseCrl(ReadAll(crl_path));
    if (!parsed.ok()) return printf("error %s\n", parsed.status().message().c_str()), 1;
    auto ingested = IngestCrl(*store.value(), parsed.value(), ca.get(), "file:" + crl_path, kNow);
    if (!ingested.ok()) return printf("error %s\n", ingested.status().message().c_str()), 1;
    entries = ingested->meta.count;
  }
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  printf("%f %ld %llu %ld\n", seconds, usage.ru_maxrss, entries, RssAnonKb());
  return 0;
}

bool RunChild(const std::string &dir, const std::string &crl, double *seconds, long *rss_kb,
              std::string *error, long *retained_kb = nullptr) {
  std::string cmd = "/proc/" + std::to_string(getpid()) + "/exe --ingest " + dir + " " + crl + " " +
                    Get().ca_path;
  FILE *pipe = popen(cmd.c_str(), "r");
  char line[512] = {0};
  bool got = pipe != nullptr && fgets(line, sizeof(line), pipe) != nullptr;
  if (pipe != nullptr) pclose(pipe);
  unsigned long long count = 0;
  long retained = 0;
  if (!got || sscanf(line, "%lf %ld %llu %ld", seconds, rss_kb, &count, &retained) != 4) {
    *error = got ? line : "no output";
    return false;
  }
  if (retained_kb != nullptr) *retained_kb = retained;
  return true;
}

// Cold ingest of the 1M CRL into an empty store.
void BM_Ingest1MCrl(benchmark::State &state) {
  Fixture &f = Get();
  for (auto _ : state) {
    std::string dir = f.dir + "/store-" + std::to_string(rand());
    double seconds = 0;
    long rss = 0, retained = 0;
    std::string error;
    if (!RunChild(dir, f.crl_path, &seconds, &rss, &error, &retained)) {
      state.SkipWithError(error.c_str());
      return;
    }
    state.SetIterationTime(seconds);
    state.counters["peak_rss_MB"] = static_cast<double>(rss) / 1024.0;
    state.counters["retained_anon_MB"] = static_cast<double>(retained) / 1024.0;
    state.counters["crl_MB"] = static_cast<double>(f.crl_bytes) / 1e6;
    state.counters["generate_s"] = f.generate_s;
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
}
BENCHMARK(BM_Ingest1MCrl)
    ->UseManualTime()
    ->Iterations(1)
    ->Repetitions(3)
    ->Unit(benchmark::kMillisecond);

// Replacing a stored 1M CRL by the next one (1M deletes + 1M inserts, one txn).
void BM_Replace1MCrl(benchmark::State &state) {
  Fixture &f = Get();
  for (auto _ : state) {
    std::string dir = f.dir + "/replace-" + std::to_string(rand());
    double seconds = 0;
    long rss = 0;
    std::string error;
    if (!RunChild(dir, f.crl_path, &seconds, &rss, &error) ||
        !RunChild(dir, f.crl2_path, &seconds, &rss, &error)) {
      state.SkipWithError(error.c_str());
      return;
    }
    state.SetIterationTime(seconds);
    state.counters["peak_rss_MB"] = static_cast<double>(rss) / 1024.0;
    state.counters["store_MB"] =
        static_cast<double>(std::filesystem::file_size(dir + "/data.mdb")) / 1e6;
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
}
BENCHMARK(BM_Replace1MCrl)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);

struct Loaded {
  std::string dir;
  std::unique_ptr<RevocationChecker> checker;
  FixedClock clock{kNow};
  CrlMeta meta;
  std::string issuer_id;
};

Loaded &LoadedStore() {
  static Loaded *l = [] {
    auto *loaded = new Loaded();
    Fixture &f = Get();
    loaded->dir = f.dir + "/lookup";
    double seconds = 0;
    long rss = 0;
    std::string error;
    if (!RunChild(loaded->dir, f.crl_path, &seconds, &rss, &error)) abort();
    loaded->checker = std::move(RevocationChecker::Open(loaded->dir, loaded->clock)).value();
    loaded->issuer_id = IssuerId(f.ca.cert.get());
    auto read = loaded->checker->store().Read();
    loaded->meta = *read->GetCrl(loaded->issuer_id);
    return loaded;
  }();
  return *l;
}

// The store's lookup: read txn, CRL record, serial get (hits and misses alternate).
void BM_Lookup1MCrl(benchmark::State &state) {
  Loaded &l = LoadedStore();
  RevocationStore &store = l.checker->store();
  std::vector<std::string> keys;
  for (uint64_t i = 0; i < 4096; ++i) {
    std::string s = SerialBytes(i % 2 == 0 ? (i * 241) % kEntries + 7 : kEntries + 100 + i);
    keys.push_back(s);
  }
  size_t i = 0, hits = 0;
  std::vector<double> samples;
  samples.reserve(200000);
  for (auto _ : state) {
    auto t0 = Clock::now();
    auto read = store.Read();
    std::optional<CrlHead> meta = read->GetCrlHead(l.issuer_id);
    std::optional<RevokedEntry> entry = read->GetRevoked(meta->gen, keys[i++ & 4095]);
    hits += entry.has_value();
    benchmark::DoNotOptimize(entry);
    if (samples.size() < 200000)
      samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
  }
  std::sort(samples.begin(), samples.end());
  state.counters["median_ns"] = samples.empty() ? 0 : samples[samples.size() / 2];
  state.counters["p99_ns"] = samples.empty() ? 0 : samples[samples.size() * 99 / 100];
  state.counters["hit_ratio"] = static_cast<double>(hits) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_Lookup1MCrl);

// The whole per-request check of a leaf (IssuerId hash, serial, lookups) in cache_only.
void BM_CheckLeaf1MCrl(benchmark::State &state) {
  Loaded &l = LoadedStore();
  Fixture &f = Get();
  pki::Issued leaf = f.pki->Issue(f.ca, pki::PkiBuilder::LeafSpec("CN=bench leaf"));
  ossl::UniquePtr<X509_STORE> trust(X509_STORE_new());
  X509_STORE_add_cert(trust.get(), f.root.cert.get());
  ossl::UniquePtr<STACK_OF(X509)> sent(sk_X509_new_null());
  X509_up_ref(f.ca.cert.get());
  sk_X509_push(sent.get(), f.ca.cert.get());
  ChainEvidence evidence =
      BuildChainEvidence(leaf.cert.get(), sent.get(), trust.get(), f.pki->now());
  Policy policy;
  (void)policy.Set("revocation", {"cache_only"});
  (void)policy.Set("revocation_scope", {"leaf"});
  (void)policy.Set("revocation_sources", {"crl"});
  std::vector<double> samples;
  samples.reserve(200000);
  for (auto _ : state) {
    auto t0 = Clock::now();
    std::vector<RevocationAnswer> answers = l.checker->Check(evidence, policy);
    benchmark::DoNotOptimize(answers);
    if (samples.size() < 200000)
      samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
    if (answers.empty() || answers[0].status != RevocationStatus::kGood) {
      state.SkipWithError("the leaf is not good");
      break;
    }
  }
  std::sort(samples.begin(), samples.end());
  state.counters["median_ns"] = samples.empty() ? 0 : samples[samples.size() / 2];
}
BENCHMARK(BM_CheckLeaf1MCrl);

// What a process pays once per store and CRL (issue 9 §4): opening the store
// (the meta and page checks read every page in use with pread before LMDB maps
// it), and the first use of the CRL (its 1,000,000 serials walked against
// their count and SHA-256).
void BM_OpenAndFirstUse1MCrl(benchmark::State &state) {
  Loaded &l = LoadedStore();
  double open_ms = 0, verify_ms = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    auto store = RevocationStore::Open(l.dir);
    auto t1 = Clock::now();
    if (!store.ok()) {
      state.SkipWithError(store.status().message().c_str());
      break;
    }
    auto read = store.value()->Read();
    std::optional<CrlMeta> meta = read->GetCrl(l.issuer_id);
    Status verified = meta ? read->VerifySerials(*meta) : Status::Error("no CRL");
    auto t2 = Clock::now();
    if (!verified.ok()) {
      state.SkipWithError(verified.message().c_str());
      break;
    }
    open_ms += std::chrono::duration<double, std::milli>(t1 - t0).count();
    verify_ms += std::chrono::duration<double, std::milli>(t2 - t1).count();
    state.SetIterationTime(std::chrono::duration<double>(t2 - t0).count());
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["open_ms"] = open_ms / n;
  state.counters["first_use_ms"] = verify_ms / n;
}
BENCHMARK(BM_OpenAndFirstUse1MCrl)->UseManualTime()->Iterations(3)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char **argv) {
  if (argc == 5 && std::string(argv[1]) == "--ingest")
    return IngestChild(argv[2], argv[3], argv[4]);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::error_code ignored;
  std::filesystem::remove_all(Get().dir, ignored);
  return 0;
}
