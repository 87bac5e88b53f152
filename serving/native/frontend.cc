// Native gRPC front end for the sasrec.v1.Recommender service.
//
// gRPC C++ (async API, one completion-queue thread) accepts the calls, checks
// the bearer token and the concurrent-call limit, and queues each call's raw
// request bytes. Python takes the queue in batches (`next_batch`, the GIL is
// released while it waits), answers a whole batch with one model call, and
// hands each call's status and raw response bytes back (`finish`). So Python
// runs once per batch of calls instead of once per call, and the contract's
// logic (validation, error details, the model) stays in Python.
//
// Health (grpc.health.v1, C++'s default service) is served here, without
// Python, and without a token. Server reflection (a bidirectional stream)
// needs the token like every other method (gRPC C++ server interceptors
// cannot refuse a call, so the reflection plugin is not used): this front
// end checks the token and hands each reflection request to Python, which
// answers it with the Python server's reflection code (one response per
// request). A call must carry exactly one `authorization` header, as on the
// Python server.
//
// The fast path: once Python installs a version's vocabulary
// (`set_fast_table`), a plain Recommend (a history of known ids and k; no
// allow/deny lists, user_id, explain or version pin) is parsed and encoded
// here, on the completion-queue thread. Python receives the item indices
// (`fast`), scores a batch of them with one engine call and hands back the
// top-k index and score arrays (`finish_fast`); the response is built and
// serialized here. Any other request, or one encoded with a vocabulary that
// Python has since replaced, takes the raw-bytes path above, so every rule
// of the contract keeps one implementation (in Python) and the fast path
// only skips work whose outcome it knows.
//
// Built by serving/native/build.sh into sasrec/serving/_native_frontend*.so.

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "sasrec/serving/v1/recommender.grpc.pb.h"

namespace py = pybind11;

namespace {

using Steady = std::chrono::steady_clock;
using RawService = sasrec::v1::Recommender::WithRawMethod_Recommend<
    sasrec::v1::Recommender::WithRawMethod_RecommendBatch<
        sasrec::v1::Recommender::WithRawMethod_GetModelInfo<
            sasrec::v1::Recommender::WithRawMethod_RecordEvents<
                sasrec::v1::Recommender::Service>>>>;

// Recommend, RecommendBatch, GetModelInfo, RecordEvents (proto order)
constexpr int kNumMethods = 4;
constexpr int kReflection = 4;  // the method index Python sees for a reflection request
const char* const kReflectionMethod =
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
const char* const kServiceName = "sasrec.v1.Recommender";
const char* const kAuthMessage = "missing or invalid 'authorization: Bearer' token";
const char* const kOverloadMessage = "Concurrent RPC limit exceeded!";
// The request headers a call may carry (keys + values), as grpcio's default.
constexpr size_t kMaxMetadataBytes = 16 * 1024;
const char* const kMetadataMessage = "request headers exceed 16384 bytes";

class Frontend;

// What the completion queue hands back: a unary call or a stream.
struct Tag {
  explicit Tag(bool is_stream) : stream(is_stream) {}
  const bool stream;
};

// One call's life: REQUESTED (waiting for a client) -> WAITING (queued for or
// held by Python) -> FINISHING (response sent) -> deleted.
struct Call : Tag {
  enum class State { kRequested, kWaiting, kFinishing };

  Call(Frontend* owner, int method_index)
      : Tag(false), frontend(owner), method(method_index), responder(&context) {}

  Frontend* frontend;
  int method;
  State state = State::kRequested;
  uint64_t id = 0;
  Steady::time_point arrival;
  grpc::ServerContext context;
  grpc::ByteBuffer request;
  grpc::ServerAsyncResponseWriter<grpc::ByteBuffer> responder;
};

// A call of a method without a generated handler (only reflection is served):
// REQUESTED -> READING -> WAITING (Python) -> WRITING -> READING ... ->
// FINISHING (client half-closed, or an error) -> deleted.
struct StreamCall : Tag {
  enum class State { kRequested, kReading, kWaiting, kWriting, kFinishing };

  StreamCall() : Tag(true), stream(&context) {}

  State state = State::kRequested;
  uint64_t id = 0;
  Steady::time_point arrival;
  grpc::GenericServerContext context;
  grpc::GenericServerAsyncReaderWriter stream;
  grpc::ByteBuffer message;
};

// What Python receives for one call. `rejected` >= 0 marks a call the front
// end already answered (auth, overload): Python only records it in metrics.
struct Item {
  uint64_t id;
  int method;
  std::string payload;
  std::optional<double> remaining;  // seconds to the deadline, None: no deadline
  double age;                       // seconds since the call arrived
  int rejected;
  int64_t generation;  // the fast table `fast` was encoded with (-1: none)
  std::string fast;    // int32 [k, include_history, item index...] (empty: not fast)
};

// A version's vocabulary and the response fields the fast path fills in.
struct FastTable {
  int64_t generation = 0;
  std::unordered_map<std::string, int32_t> index;  // raw id -> model index (1..N)
  std::vector<std::string> names;                  // model index -> raw id (0: padding)
  std::string model_version;
  std::string version_label;
  int max_len = 0;
  int max_k = 0;
  int max_history = 0;
  int default_k = 0;
};

// Scores at or below this are masked items (as predictor.py's _MASKED_SCORE).
constexpr float kMaskedScore = -1e30f;

// The int32 record Python reads for a plain Recommend, or "" when the request
// needs the Python path (anything the contract treats specially).
std::string FastEncode(const std::string& payload, const FastTable& table) {
  sasrec::v1::RecommendRequest request;
  if (!request.ParseFromString(payload)) return "";
  if (request.allowed_items_size() > 0 || request.excluded_items_size() > 0 ||
      !request.user_id().empty() || request.explain() || !request.model_version().empty() ||
      !request.version_label().empty()) {
    return "";
  }
  const int n = request.history_size();
  // Empty (popularity fallback), over the cap (INVALID_ARGUMENT), or so long
  // that older items must be denied: Python's rules.
  if (n == 0 || n > table.max_history || (!request.include_history() && n > table.max_len)) {
    return "";
  }
  if (request.k() < 0 || request.k() > table.max_k) return "";
  const int num_items = static_cast<int>(table.names.size()) - 1;
  const int k = std::min({request.k() ? request.k() : table.default_k, table.max_k, num_items});
  const int first = std::max(0, n - table.max_len);
  std::string out((2 + n - first) * sizeof(int32_t), '\0');
  auto* record = reinterpret_cast<int32_t*>(out.data());
  record[0] = k;
  record[1] = request.include_history() ? 1 : 0;
  for (int i = first; i < n; ++i) {
    auto found = table.index.find(request.history(i));
    if (found == table.index.end()) return "";  // unknown (or empty) id: reported by Python
    record[2 + i - first] = found->second;
  }
  return out;
}

std::string ToString(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  out.reserve(buffer.Length());
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

class Frontend {
 public:
  Frontend(std::string address, int max_concurrent, std::string auth_token, std::string tls_key,
           std::string tls_cert, bool reuse_port)
      : address_(std::move(address)),
        max_concurrent_(max_concurrent),
        expected_auth_(auth_token.empty() ? "" : "Bearer " + auth_token),
        tls_key_(std::move(tls_key)),
        tls_cert_(std::move(tls_cert)),
        reuse_port_(reuse_port) {
    if (max_concurrent_ < 1) {
      throw std::invalid_argument("max_concurrent must be >= 1, received " +
                                  std::to_string(max_concurrent_));
    }
  }

  ~Frontend() { Shutdown(0.0); }

  // Binds the port, starts serving with health NOT_SERVING; returns the port.
  int Start() {
    std::lock_guard<std::mutex> start_lock(lifecycle_mu_);
    if (server_) throw std::runtime_error("front end already started");
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, reuse_port_ ? 1 : 0);
    // gRPC C++ 1.51 answers headers over its limit by dropping the whole
    // HTTP/2 connection (every call sharing it fails). So the transport takes
    // up to 1 MiB and Accept refuses a call over kMaxMetadataBytes by itself,
    // with RESOURCE_EXHAUSTED for that call only.
    builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, 1 << 20);
    std::shared_ptr<grpc::ServerCredentials> credentials;
    if (!tls_key_.empty()) {
      grpc::SslServerCredentialsOptions ssl;
      ssl.pem_key_cert_pairs.push_back({tls_key_, tls_cert_});
      credentials = grpc::SslServerCredentials(ssl);
    } else {
      credentials = grpc::InsecureServerCredentials();
    }
    int port = 0;
    builder.AddListeningPort(address_, credentials, &port);
    builder.RegisterService(&service_);
    builder.RegisterAsyncGenericService(&generic_);
    cq_ = builder.AddCompletionQueue();
    server_ = builder.BuildAndStart();
    if (!server_ || port == 0) {
      server_.reset();
      throw std::runtime_error("cannot bind gRPC port " + address_);
    }
    SetServing(false);
    for (int m = 0; m < kNumMethods; ++m) Arm(m);
    ArmStream();
    poller_ = std::thread([this] { Poll(); });
    sender_ = std::thread([this] { Send(); });
    return port;
  }

  void SetServing(bool serving) {
    auto* health = server_ ? server_->GetHealthCheckService() : nullptr;
    if (health == nullptr) return;
    health->SetServingStatus("", serving);
    health->SetServingStatus(kServiceName, serving);
  }

  // Up to `max_items` queued calls; waits up to `timeout` seconds for the
  // first. An empty list on timeout, None once the front end has shut down.
  std::optional<std::vector<Item>> NextBatch(int max_items, double timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    auto ready = [this] { return !queue_.empty() || closed_; };
    if (!cv_.wait_for(lock, std::chrono::duration<double>(timeout), ready)) {
      return std::vector<Item>{};
    }
    if (queue_.empty()) return std::nullopt;  // closed and drained
    std::vector<Item> items;
    const auto now_steady = Steady::now();
    const auto now_system = std::chrono::system_clock::now();
    while (!queue_.empty() && static_cast<int>(items.size()) < max_items) {
      Queued q = std::move(queue_.front());
      queue_.pop_front();
      Item item{q.id,
                q.method,
                std::move(q.payload),
                std::nullopt,
                std::chrono::duration<double>(now_steady - q.arrival).count(),
                q.rejected,
                q.generation,
                std::move(q.fast)};
      if (q.deadline != std::chrono::system_clock::time_point::max()) {
        item.remaining = std::chrono::duration<double>(q.deadline - now_system).count();
      }
      items.push_back(std::move(item));
    }
    return items;
  }

  // Answers call `id`: OK with `payload`, or an error status with `message`
  // and optional google.rpc.Status `details` (grpc-status-details-bin).
  // Returns False if the call is gone (already answered or shut down).
  bool Finish(uint64_t id, int code, const std::string& message, const std::string& payload,
              const std::string& details) {
    Call* call = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = waiting_.find(id);
      if (it == waiting_.end()) {
        auto stream = waiting_streams_.find(id);
        if (stream == waiting_streams_.end()) return false;
        StreamCall* s = stream->second;
        waiting_streams_.erase(stream);
        if (code == static_cast<int>(grpc::StatusCode::OK)) {
          s->state = StreamCall::State::kWriting;
          grpc::Slice slice(payload);
          grpc::ByteBuffer buffer(&slice, 1);
          s->stream.Write(buffer, s);
        } else {
          s->state = StreamCall::State::kFinishing;
          s->stream.Finish(grpc::Status(static_cast<grpc::StatusCode>(code), message, details), s);
        }
        return true;
      }
      call = it->second;
      waiting_.erase(it);
      call->state = Call::State::kFinishing;
    }
    Respond(call, static_cast<grpc::StatusCode>(code), message, payload, details);
    return true;
  }

  // Installs the vocabulary plain Recommend calls are encoded with from now on.
  void SetFastTable(std::shared_ptr<const FastTable> table) {
    std::lock_guard<std::mutex> lock(fast_mu_);
    fast_table_ = std::move(table);
  }

  std::shared_ptr<const FastTable> CurrentFastTable() {
    std::lock_guard<std::mutex> lock(fast_mu_);
    return fast_table_;
  }

  // Answers fast-path calls: row r of `ids`/`scores` (width `width`) is the
  // engine's top-k of call `call_ids[r]`, whose k is `ks[r]`. The response
  // keeps the first k entries that are real, unmasked items (the Python
  // path's rule). Returns how many calls were still waiting.
  int FinishFast(const FastTable& table, const std::vector<uint64_t>& call_ids,
                 const std::vector<int32_t>& ids, const std::vector<float>& scores, int width,
                 const std::vector<int32_t>& ks) {
    std::vector<Call*> calls(call_ids.size(), nullptr);
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t r = 0; r < call_ids.size(); ++r) {
        auto it = waiting_.find(call_ids[r]);
        if (it == waiting_.end()) continue;
        calls[r] = it->second;
        waiting_.erase(it);
        calls[r]->state = Call::State::kFinishing;
      }
    }
    const int num_names = static_cast<int>(table.names.size());
    std::vector<Outgoing> out;
    out.reserve(calls.size());
    for (size_t r = 0; r < calls.size(); ++r) {
      if (calls[r] == nullptr) continue;
      sasrec::v1::RecommendResponse response;
      const int k = std::min(ks[r], width);
      for (int j = 0; j < k; ++j) {
        const int32_t id = ids[r * width + j];
        const float score = scores[r * width + j];
        if (!(score > kMaskedScore) || id <= 0 || id >= num_names) continue;
        auto* item = response.add_items();
        item->set_item_id(table.names[id]);
        item->set_score(score);
      }
      response.set_model_version(table.model_version);
      response.set_version_label(table.version_label);
      out.push_back({calls[r], response.SerializeAsString()});
    }
    const int answered = static_cast<int>(out.size());
    // Writing a response costs tens of microseconds of gRPC work (sendmsg,
    // completion bookkeeping). For a batch, the sender thread does it while
    // the Python thread scores the next batch; a lone call is sent here,
    // which spares it a thread wake-up.
    if (out.size() > kInlineSends) {
      std::lock_guard<std::mutex> lock(send_mu_);
      if (!send_stop_) {
        for (auto& o : out) sends_.push_back(std::move(o));
        out.clear();
      }
    }
    if (out.empty()) {
      send_cv_.notify_one();
    } else {
      for (auto& o : out) Respond(o.call, grpc::StatusCode::OK, "", o.body, "");
    }
    return answered;
  }

  // Graceful stop: no new calls, calls in flight get up to `grace` seconds
  // (Python keeps answering meanwhile), then the rest are cancelled.
  void Shutdown(double grace) {
    std::lock_guard<std::mutex> stop_lock(lifecycle_mu_);
    if (!server_ || stopped_) return;
    if (auto* health = server_->GetHealthCheckService()) health->Shutdown();
    const auto deadline =
        std::chrono::system_clock::now() +
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::duration<double>(grace > 0 ? grace : 0));
    {
      py::gil_scoped_release release;
      server_->Shutdown(deadline);  // returns when calls are done or cancelled
      std::vector<Call*> left;
      {
        std::lock_guard<std::mutex> lock(mu_);
        closed_ = true;
        for (auto& [id, call] : waiting_) {
          call->state = Call::State::kFinishing;
          left.push_back(call);
        }
        waiting_.clear();
        for (auto& [id, s] : waiting_streams_) {
          s->state = StreamCall::State::kFinishing;
          s->stream.Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"),
                           s);
        }
        waiting_streams_.clear();
      }
      cv_.notify_all();
      for (Call* call : left) {
        Respond(call, grpc::StatusCode::UNAVAILABLE, "server is shutting down", "", "");
      }
      {
        std::lock_guard<std::mutex> lock(send_mu_);
        send_stop_ = true;  // the sender drains what is queued, then returns
      }
      send_cv_.notify_one();
      if (sender_.joinable()) sender_.join();
      cq_->Shutdown();
      if (poller_.joinable()) poller_.join();
    }
    stopped_ = true;
  }

  int InFlight() const { return in_flight_.load(); }

  size_t QueueLength() {
    std::lock_guard<std::mutex> lock(mu_);
    return queue_.size();
  }

 private:
  // A fast-path response waiting for the sender thread.
  struct Outgoing {
    Call* call;
    std::string body;
  };
  // Batches of more calls than this are written by the sender thread.
  static constexpr size_t kInlineSends = 1;

  struct Queued {
    uint64_t id;
    int method;
    std::string payload;
    Steady::time_point arrival;
    std::chrono::system_clock::time_point deadline;
    int rejected;
    int64_t generation = -1;
    std::string fast;
  };

  void Arm(int method) {
    auto* call = new Call(this, method);
    switch (method) {
      case 0:
        service_.RequestRecommend(&call->context, &call->request, &call->responder, cq_.get(),
                                  cq_.get(), static_cast<Tag*>(call));
        break;
      case 1:
        service_.RequestRecommendBatch(&call->context, &call->request, &call->responder,
                                       cq_.get(), cq_.get(), static_cast<Tag*>(call));
        break;
      case 2:
        service_.RequestGetModelInfo(&call->context, &call->request, &call->responder,
                                     cq_.get(), cq_.get(), static_cast<Tag*>(call));
        break;
      default:
        service_.RequestRecordEvents(&call->context, &call->request, &call->responder,
                                     cq_.get(), cq_.get(), static_cast<Tag*>(call));
    }
  }

  void ArmStream() {
    auto* s = new StreamCall();
    generic_.RequestCall(&s->context, &s->stream, cq_.get(), cq_.get(), s);
  }

  // Runs on the completion-queue thread for each finished step of a stream.
  void Step(StreamCall* s, bool ok) {
    switch (s->state) {
      case StreamCall::State::kRequested:
        if (!ok) {  // the server is shutting down
          delete s;
          return;
        }
        ArmStream();
        in_flight_.fetch_add(1);
        s->arrival = Steady::now();
        if (MetadataBytes(s->context) > kMaxMetadataBytes) {
          FinishStream(s, grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, kMetadataMessage));
        } else if (s->context.method() != kReflectionMethod) {
          FinishStream(s, grpc::Status(grpc::StatusCode::UNIMPLEMENTED, ""));
        } else if (!expected_auth_.empty() && !Authorized(s->context)) {
          FinishStream(s, grpc::Status(grpc::StatusCode::UNAUTHENTICATED, kAuthMessage));
        } else {
          s->state = StreamCall::State::kReading;
          s->stream.Read(&s->message, s);
        }
        return;
      case StreamCall::State::kReading:
        if (!ok) {  // the client is done sending (or gone)
          FinishStream(s, grpc::Status::OK);
          return;
        }
        Enqueue(s);
        return;
      case StreamCall::State::kWriting:
        if (!ok) {
          FinishStream(s, grpc::Status(grpc::StatusCode::CANCELLED, "client gone"));
          return;
        }
        s->state = StreamCall::State::kReading;
        s->stream.Read(&s->message, s);
        return;
      case StreamCall::State::kFinishing:
        in_flight_.fetch_sub(1);
        delete s;
        return;
      case StreamCall::State::kWaiting:
        return;  // never a completion-queue event
    }
  }

  static void FinishStream(StreamCall* s, const grpc::Status& status) {
    s->state = StreamCall::State::kFinishing;
    s->stream.Finish(status, s);
  }

  // Queues one reflection request for Python (answered through Finish).
  void Enqueue(StreamCall* s) {
    Queued q{0, kReflection, ToString(s->message), Steady::now(), s->context.deadline(), -1};
    s->message.Clear();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) {
        FinishStream(s, grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
        return;
      }
      q.id = ++next_id_;
      s->id = q.id;
      s->state = StreamCall::State::kWaiting;
      waiting_streams_.emplace(q.id, s);
      queue_.push_back(std::move(q));
    }
    cv_.notify_one();
  }

  // The sender thread: writes the responses FinishFast queued.
  void Send() {
    std::unique_lock<std::mutex> lock(send_mu_);
    while (true) {
      send_cv_.wait(lock, [this] { return !sends_.empty() || send_stop_; });
      if (sends_.empty()) return;  // stopping, nothing left
      std::vector<Outgoing> batch;
      batch.swap(sends_);
      lock.unlock();
      for (auto& o : batch) Respond(o.call, grpc::StatusCode::OK, "", o.body, "");
      lock.lock();
    }
  }

  void Poll() {
    void* tag = nullptr;
    bool ok = false;
    while (cq_->Next(&tag, &ok)) {
      if (static_cast<Tag*>(tag)->stream) {
        Step(static_cast<StreamCall*>(static_cast<Tag*>(tag)), ok);
        continue;
      }
      auto* call = static_cast<Call*>(static_cast<Tag*>(tag));
      if (call->state == Call::State::kRequested) {
        if (!ok) {  // the server is shutting down: no new call here
          delete call;
          continue;
        }
        Arm(call->method);
        Accept(call);
      } else {  // kFinishing: the response went out (or the call was cancelled)
        in_flight_.fetch_sub(1);
        delete call;
      }
    }
  }

  void Accept(Call* call) {
    call->arrival = Steady::now();
    in_flight_.fetch_add(1);
    int rejected = -1;
    const char* message = nullptr;
    if (MetadataBytes(call->context) > kMaxMetadataBytes) {
      rejected = grpc::StatusCode::RESOURCE_EXHAUSTED;
      message = kMetadataMessage;
    } else if (!expected_auth_.empty() && !Authorized(call->context)) {
      rejected = grpc::StatusCode::UNAUTHENTICATED;
      message = kAuthMessage;
    } else if (in_flight_.load() > max_concurrent_) {
      rejected = grpc::StatusCode::RESOURCE_EXHAUSTED;
      message = kOverloadMessage;
    }
    Queued q{0, call->method, "", call->arrival, call->context.deadline(), rejected};
    if (rejected >= 0) {
      call->state = Call::State::kFinishing;
      Respond(call, static_cast<grpc::StatusCode>(rejected), message, "", "");
    } else {
      q.payload = ToString(call->request);
      call->request.Clear();
      if (call->method == 0) {
        if (auto table = CurrentFastTable()) {
          q.fast = FastEncode(q.payload, *table);
          if (!q.fast.empty()) q.generation = table->generation;
        }
      }
    }
    // Decided under the lock: once the call is in `waiting_`, Python may
    // answer it (and set its state) before this thread looks at it again, so
    // reading `call->state` after the lock would finish the call twice.
    bool refuse_closed = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (rejected < 0) {
        if (closed_) {
          call->state = Call::State::kFinishing;
          refuse_closed = true;
        } else {
          q.id = ++next_id_;
          call->id = q.id;
          call->state = Call::State::kWaiting;
          waiting_.emplace(q.id, call);
        }
      }
      if (!closed_) queue_.push_back(std::move(q));
    }
    if (refuse_closed) {
      Respond(call, grpc::StatusCode::UNAVAILABLE, "server is shutting down", "", "");
      return;
    }
    cv_.notify_one();
  }

  static size_t MetadataBytes(const grpc::ServerContext& context) {
    size_t total = 0;
    for (const auto& [key, value] : context.client_metadata()) total += key.size() + value.size();
    return total;
  }

  // Exactly one `authorization` header holding the token (compared in
  // constant time); two headers are refused whatever they hold.
  bool Authorized(const grpc::ServerContext& context) const {
    const auto& metadata = context.client_metadata();
    if (metadata.count("authorization") != 1) return false;
    const auto& given = metadata.find("authorization")->second;
    if (given.size() != expected_auth_.size()) return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < given.size(); ++i) {
      diff |= static_cast<unsigned char>(given.data()[i] ^ expected_auth_[i]);
    }
    return diff == 0;
  }

  static void Respond(Call* call, grpc::StatusCode code, const std::string& message,
                      const std::string& payload, const std::string& details) {
    if (code == grpc::StatusCode::OK) {
      grpc::Slice slice(payload);
      grpc::ByteBuffer buffer(&slice, 1);
      call->responder.Finish(buffer, grpc::Status::OK, static_cast<Tag*>(call));
    } else {
      call->responder.FinishWithError(grpc::Status(code, message, details),
                                      static_cast<Tag*>(call));
    }
  }

  const std::string address_;
  const int max_concurrent_;
  const std::string expected_auth_;
  const std::string tls_key_;
  const std::string tls_cert_;
  const bool reuse_port_;

  RawService service_;
  grpc::AsyncGenericService generic_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::unique_ptr<grpc::Server> server_;
  std::thread poller_;
  std::mutex lifecycle_mu_;
  bool stopped_ = false;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Queued> queue_;
  std::unordered_map<uint64_t, Call*> waiting_;
  std::unordered_map<uint64_t, StreamCall*> waiting_streams_;
  uint64_t next_id_ = 0;
  bool closed_ = false;
  std::atomic<int> in_flight_{0};

  std::thread sender_;
  std::mutex send_mu_;
  std::condition_variable send_cv_;
  std::vector<Outgoing> sends_;
  bool send_stop_ = false;

  std::mutex fast_mu_;
  std::shared_ptr<const FastTable> fast_table_;  // null: no fast path
};

}  // namespace

PYBIND11_MODULE(_native_frontend, m) {
  m.doc() = "Native gRPC front end of sasrec.v1.Recommender (see serving/native/frontend.cc).";
  py::class_<Frontend>(m, "Frontend")
      .def(py::init<std::string, int, std::string, std::string, std::string, bool>(),
           py::arg("address"), py::arg("max_concurrent"), py::arg("auth_token") = "",
           py::arg("tls_key") = "", py::arg("tls_cert") = "", py::arg("reuse_port") = false)
      .def("start", &Frontend::Start, py::call_guard<py::gil_scoped_release>())
      .def("set_serving", &Frontend::SetServing, py::call_guard<py::gil_scoped_release>())
      .def(
          "next_batch",
          [](Frontend& self, int max_items, double timeout) -> py::object {
            std::optional<std::vector<Item>> items;
            {
              py::gil_scoped_release release;
              items = self.NextBatch(max_items, timeout);
            }
            if (!items) return py::none();
            py::list out(items->size());
            for (size_t i = 0; i < items->size(); ++i) {
              Item& it = (*items)[i];
              py::object remaining = it.remaining ? py::object(py::float_(*it.remaining))
                                                  : py::object(py::none());
              py::object fast = it.fast.empty() ? py::object(py::none())
                                                : py::object(py::bytes(it.fast));
              out[i] = py::make_tuple(it.id, it.method, py::bytes(it.payload), remaining, it.age,
                                      it.rejected, it.generation, fast);
            }
            return out;
          },
          py::arg("max_items"), py::arg("timeout"))
      .def(
          "finish",
          [](Frontend& self, uint64_t id, int code, const std::string& message,
             const py::bytes& payload, const py::bytes& details) {
            std::string body = payload;
            std::string extra = details;
            py::gil_scoped_release release;
            return self.Finish(id, code, message, body, extra);
          },
          py::arg("call_id"), py::arg("code"), py::arg("message"), py::arg("payload"),
          py::arg("details"))
      .def(
          "set_fast_table",
          [](Frontend& self, int64_t generation, const std::vector<std::string>& item_ids,
             const std::string& model_version, const std::string& version_label, int max_len,
             int max_k, int max_history, int default_k) {
            auto table = std::make_shared<FastTable>();
            table->generation = generation;
            table->names.reserve(item_ids.size() + 1);
            table->names.emplace_back();
            table->index.reserve(item_ids.size());
            for (size_t i = 0; i < item_ids.size(); ++i) {
              table->names.push_back(item_ids[i]);
              table->index.emplace(item_ids[i], static_cast<int32_t>(i + 1));
            }
            table->model_version = model_version;
            table->version_label = version_label;
            table->max_len = max_len;
            table->max_k = max_k;
            table->max_history = max_history;
            table->default_k = default_k;
            self.SetFastTable(std::move(table));
          },
          py::arg("generation"), py::arg("item_ids"), py::arg("model_version"),
          py::arg("version_label"), py::arg("max_len"), py::arg("max_k"), py::arg("max_history"),
          py::arg("default_k"))
      .def(
          "clear_fast_table", [](Frontend& self) { self.SetFastTable(nullptr); })
      .def(
          "finish_fast",
          [](Frontend& self, int64_t generation, const std::vector<uint64_t>& call_ids,
             py::array_t<int32_t, py::array::c_style | py::array::forcecast> ids,
             py::array_t<float, py::array::c_style | py::array::forcecast> scores,
             const std::vector<int32_t>& ks) {
            const size_t rows = call_ids.size();
            if (ids.ndim() != 2 || scores.ndim() != 2 || ids.shape(0) != scores.shape(0) ||
                ids.shape(1) != scores.shape(1) || static_cast<size_t>(ids.shape(0)) != rows ||
                ks.size() != rows) {
              throw std::invalid_argument("finish_fast: ids and scores must be (calls, k) arrays");
            }
            auto table = self.CurrentFastTable();
            if (!table || table->generation != generation) {
              throw std::invalid_argument("finish_fast: the fast table changed under the batch");
            }
            const int width = static_cast<int>(ids.shape(1));
            std::vector<int32_t> id_copy(ids.data(), ids.data() + rows * width);
            std::vector<float> score_copy(scores.data(), scores.data() + rows * width);
            py::gil_scoped_release release;
            return self.FinishFast(*table, call_ids, id_copy, score_copy, width, ks);
          },
          py::arg("generation"), py::arg("call_ids"), py::arg("ids"), py::arg("scores"),
          py::arg("ks"))
      .def("shutdown", &Frontend::Shutdown, py::arg("grace"))
      .def_property_readonly("in_flight", &Frontend::InFlight)
      .def_property_readonly("queued", &Frontend::QueueLength);
}
