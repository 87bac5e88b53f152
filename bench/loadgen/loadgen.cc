// Native closed-loop gRPC load generator for bench/bench_serving.py.
//
// Keeps exactly --concurrency Recommend calls in flight on one thread through
// the async CompletionQueue API (no thread hops per call: the thread that
// waits on the queue also polls the sockets). Each answer immediately starts
// the next call, until --requests calls were started or --seconds passed,
// whichever comes first; the calls still in flight are then awaited.
//
//   loadgen --address 127.0.0.1:PORT --concurrency C --requests N --seconds S
//           --histories FILE [--channels M] [--k 10] [--deadline-seconds 10]
//           [--channel-arg NAME=INT ...]
//
// Measured on the 2-core dev machine against an echo server: one thread with
// one CompletionQueue costs ~90-130 us CPU per call (one epoll_wait, one
// sendmsg, one recvmsg per call), C threads with the sync API 150-210 us at
// C >= 8, and a second channel (--channels 2) neither lowers the CPU nor
// raises throughput, so the default is one channel. Retries are disabled
// (one attempt per call; -10% user-space instructions) and so is Abseil's
// mutex deadlock detection (-6%); set LOADGEN_ABSL_DEADLOCK_DETECTION to keep it.
//
// FILE holds one request per line: item ids separated by commas, oldest first
// (blank lines are skipped). Request i uses line i modulo the line count. The
// first 4*C calls (also C in flight) warm the connection and are not counted;
// any failure there ends the run with exit status 1, as the Python loader does.
//
// Prints ONE line of JSON on stdout, with the keys of the Python loader
// (bench_serving._load) plus the client CPU cost:
//   {"mode": "grpc-native", "concurrency": C, "requests": n_ok, "p50_ms": ...,
//    "p99_ms": ..., "throughput_rps": ..., "errors": n_err,
//    "client_cpu_us_per_req": ...}
// p50 is the median (mean of the two middle values for an even count, like
// statistics.median); p99 is sorted[round(0.99 * (n - 1))], round half to
// even like Python's round(). Throughput is n_ok over the wall time from the
// first counted call to the last answer. Client CPU is user + system time of
// the whole process (gRPC's own threads included, getrusage) over the same
// span, divided by the number of answered calls (OK or not).
// Non-OK statuses count as errors; the first one is described on stderr.

#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "sasrec/serving/v1/recommender.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;
using sasrec::v1::RecommendRequest;
using sasrec::v1::RecommendResponse;
using sasrec::v1::Recommender;

struct Options {
  std::string address;
  std::string histories;
  int concurrency = 1;
  long requests = 5000;
  double seconds = 20.0;
  int channels = 1;
  int k = 10;
  double deadline_seconds = 10.0;
  std::vector<std::pair<std::string, int>> channel_args;
};

[[noreturn]] void Usage(const char* prog, const std::string& error) {
  if (!error.empty()) std::fprintf(stderr, "%s: %s\n", prog, error.c_str());
  std::fprintf(stderr,
               "usage: %s --address HOST:PORT --histories FILE [--concurrency C] "
               "[--requests N] [--seconds S] [--channels M] [--k K] "
               "[--deadline-seconds D] [--channel-arg NAME=INT ...]\n",
               prog);
  std::exit(2);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") Usage(argv[0], "");
    if (i + 1 >= argc) Usage(argv[0], "missing value for " + flag);
    const std::string value = argv[++i];
    try {
      if (flag == "--address") {
        o.address = value;
      } else if (flag == "--histories") {
        o.histories = value;
      } else if (flag == "--concurrency") {
        o.concurrency = std::stoi(value);
      } else if (flag == "--requests") {
        o.requests = std::stol(value);
      } else if (flag == "--seconds") {
        o.seconds = std::stod(value);
      } else if (flag == "--channels") {
        o.channels = std::stoi(value);
      } else if (flag == "--k") {
        o.k = std::stoi(value);
      } else if (flag == "--deadline-seconds") {
        o.deadline_seconds = std::stod(value);
      } else if (flag == "--channel-arg") {
        const size_t eq = value.find('=');
        if (eq == std::string::npos) throw std::invalid_argument(value);
        o.channel_args.emplace_back(value.substr(0, eq), std::stoi(value.substr(eq + 1)));
      } else {
        Usage(argv[0], "unknown option " + flag);
      }
    } catch (const std::exception&) {
      Usage(argv[0], "bad value for " + flag + ": " + value);
    }
  }
  if (o.address.empty()) Usage(argv[0], "--address is required");
  if (o.histories.empty()) Usage(argv[0], "--histories is required");
  if (o.concurrency < 1) Usage(argv[0], "--concurrency must be at least 1");
  if (o.channels < 1) Usage(argv[0], "--channels must be at least 1");
  if (o.requests < 0) Usage(argv[0], "--requests must not be negative");
  return o;
}

std::string Trim(const std::string& s) {
  const char* ws = " \t\r\n";
  const auto begin = s.find_first_not_of(ws);
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(ws) - begin + 1);
}

std::vector<RecommendRequest> LoadRequests(const std::string& path, int k) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "loadgen: cannot read %s\n", path.c_str());
    std::exit(2);
  }
  std::vector<RecommendRequest> out;
  std::string line;
  while (std::getline(in, line)) {
    line = Trim(line);
    if (line.empty()) continue;
    RecommendRequest req;
    req.set_k(k);
    size_t start = 0;
    while (true) {
      const size_t comma = line.find(',', start);
      const std::string item = Trim(line.substr(start, comma - start));
      if (!item.empty()) req.add_history(item);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    out.push_back(std::move(req));
  }
  if (out.empty()) {
    std::fprintf(stderr, "loadgen: no histories in %s\n", path.c_str());
    std::exit(2);
  }
  return out;
}

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

// One call in flight. A ClientContext cannot be reused, so each call gets its own.
struct Call {
  grpc::ClientContext context;
  RecommendResponse response;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<RecommendResponse>> reader;
  Clock::time_point start;
};

class LoadGen {
 public:
  LoadGen(const Options& o, std::vector<RecommendRequest> requests)
      : opts_(o), requests_(std::move(requests)) {
    for (int c = 0; c < o.channels; ++c) {
      grpc::ChannelArguments args;
      // Without a local pool, channels with equal arguments share one connection.
      if (o.channels > 1) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      // One attempt per call, as a load generator should; the retry filter
      // also costs ~10% of the client's user-space instructions per call.
      args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
      for (const auto& [name, value] : o.channel_args) args.SetInt(name, value);
      stubs_.push_back(Recommender::NewStub(
          grpc::CreateCustomChannel(o.address, grpc::InsecureChannelCredentials(), args)));
    }
  }

  // Runs calls [first, first + count) with C in flight, stopping new ones at
  // `stop` (if set). Returns the number of calls started.
  long Run(long first, long count, Clock::time_point stop, bool warmup) {
    long started = 0;
    int in_flight = 0;
    auto start_next = [&]() -> bool {
      if (started >= count) return false;
      if (!warmup && Clock::now() >= stop) return false;
      Start(first + started);
      ++started;
      ++in_flight;
      return true;
    };
    for (int c = 0; c < opts_.concurrency; ++c) {
      if (!start_next()) break;
    }
    void* tag = nullptr;
    bool ok = false;
    while (in_flight > 0 && cq_.Next(&tag, &ok)) {
      const auto done = Clock::now();
      std::unique_ptr<Call> call(static_cast<Call*>(tag));
      --in_flight;
      if (call->status.ok()) {
        if (!warmup) latencies_.push_back(std::chrono::duration<double>(done - call->start).count());
      } else {
        if (errors_ == 0 && warmup_errors_ == 0) {
          std::fprintf(stderr, "loadgen: first error%s: %d (%s) %s\n",
                       warmup ? " (warm-up)" : "", static_cast<int>(call->status.error_code()),
                       StatusName(call->status.error_code()),
                       call->status.error_message().c_str());
        }
        if (warmup) {
          ++warmup_errors_;
        } else {
          ++errors_;
        }
      }
      call.reset();
      start_next();
    }
    return started;
  }

  const std::vector<double>& latencies() const { return latencies_; }
  long errors() const { return errors_; }
  long warmup_errors() const { return warmup_errors_; }

  void Shutdown() {
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) delete static_cast<Call*>(tag);
  }

 private:
  void Start(long index) {
    auto* call = new Call;
    call->context.set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::microseconds(static_cast<long long>(opts_.deadline_seconds * 1e6)));
    auto& stub = stubs_[index % static_cast<long>(stubs_.size())];
    call->start = Clock::now();
    call->reader = stub->PrepareAsyncRecommend(
        &call->context, requests_[index % static_cast<long>(requests_.size())], &cq_);
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, call);
  }

  static const char* StatusName(grpc::StatusCode code) {
    static const char* names[] = {
        "OK",           "CANCELLED",          "UNKNOWN",           "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED", "NOT_FOUND",     "ALREADY_EXISTS",    "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",    "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL",          "UNAVAILABLE",       "DATA_LOSS",
        "UNAUTHENTICATED"};
    const int i = static_cast<int>(code);
    return (i >= 0 && i <= 16) ? names[i] : "?";
  }

  const Options& opts_;
  std::vector<RecommendRequest> requests_;
  std::vector<std::unique_ptr<Recommender::Stub>> stubs_;
  grpc::CompletionQueue cq_;
  std::vector<double> latencies_;
  long errors_ = 0;
  long warmup_errors_ = 0;
};

double Median(const std::vector<double>& sorted) {
  const size_t n = sorted.size();
  if (n == 0) return 0.0;
  return n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
}

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0.0;
  const double pos = std::nearbyint(q / 100.0 * (sorted.size() - 1));  // half to even
  const long i = std::clamp<long>(static_cast<long>(pos), 0, static_cast<long>(sorted.size()) - 1);
  return sorted[i];
}

}  // namespace

int main(int argc, char** argv) {
  const Options opts = ParseArgs(argc, argv);
  // Debian's Abseil is built without NDEBUG, so every Mutex lock in gRPC would
  // also update a deadlock-detection graph: a debugging aid, pure cost here.
  if (std::getenv("LOADGEN_ABSL_DEADLOCK_DETECTION") == nullptr) {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }
  LoadGen gen(opts, LoadRequests(opts.histories, opts.k));

  const long warmup = 4L * opts.concurrency;
  gen.Run(0, warmup, Clock::time_point::max(), /*warmup=*/true);
  if (gen.warmup_errors() > 0) {
    std::fprintf(stderr, "loadgen: %ld of %ld warm-up calls failed\n", gen.warmup_errors(),
                 warmup);
    gen.Shutdown();
    return 1;
  }

  const double cpu0 = CpuSeconds();
  const auto t0 = Clock::now();
  const auto stop = t0 + std::chrono::microseconds(static_cast<long long>(opts.seconds * 1e6));
  gen.Run(0, opts.requests, stop, /*warmup=*/false);
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu = CpuSeconds() - cpu0;
  gen.Shutdown();

  std::vector<double> sorted = gen.latencies();
  std::sort(sorted.begin(), sorted.end());
  const long ok = static_cast<long>(sorted.size());
  const long answered = ok + gen.errors();
  std::printf(
      "{\"mode\": \"grpc-native\", \"concurrency\": %d, \"requests\": %ld, "
      "\"p50_ms\": %.6f, \"p99_ms\": %.6f, \"throughput_rps\": %.3f, \"errors\": %ld, "
      "\"client_cpu_us_per_req\": %.3f}\n",
      opts.concurrency, ok, 1000 * Median(sorted), 1000 * Percentile(sorted, 99),
      elapsed > 0 ? ok / elapsed : 0.0, gen.errors(), answered ? 1e6 * cpu / answered : 0.0);
  std::fflush(stdout);
  return 0;
}
