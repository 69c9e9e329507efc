// The C API of include/mtlite.h over the C++ headers: Model, Session and FeatureIds.
//
// The rule of every entry point: check each handle, pointer, index and size, do the work inside
// guarded() so that no exception leaves, and on failure leave a message where the caller reads
// it (the session's buffer; for a shared model, a thread-local one, so that threads sharing a
// model never write the same memory). Messages are printed into fixed buffers: predict and the
// setters build no std::string, on success or failure.
#include <mtlite.h>

#include <mtlite/mtlite.hpp>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if !defined(_WIN32)
#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace {

constexpr std::size_t kMessageBytes = 1024;

// Where a failure's message goes: a fixed buffer.
struct Sink {
  char* text;
  std::size_t size;

  mtlite_status fail(mtlite_status code, const char* fmt, ...) const noexcept {
    if (text && size) {
      va_list args;
      va_start(args, fmt);
      std::vsnprintf(text, size, fmt, args);
      va_end(args);
    }
    return code;
  }
};

// Runs f, turning every exception into a status and a message. `error_code` is what an
// mtlite::Error means for this call (a bad file, a bad value).
template <class F>
mtlite_status guarded(const Sink& sink, mtlite_status error_code, F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return sink.fail(MTLITE_ERROR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::length_error&) {
    return sink.fail(MTLITE_ERROR_OUT_OF_MEMORY, "out of memory: a size beyond what memory can hold");
  } catch (const mtlite::Error& e) {
    return sink.fail(error_code, "%s", e.what());
  } catch (const std::exception& e) {
    return sink.fail(MTLITE_ERROR_INTERNAL, "internal error: %s", e.what());
  } catch (...) {
    return sink.fail(MTLITE_ERROR_INTERNAL, "internal error: an unknown exception");
  }
}

// The index of `name` in `names`, or names.size(). strcmp: no std::string is made.
std::size_t find_name(const std::vector<const char*>& names, const char* name) noexcept {
  std::size_t i = 0;
  while (i < names.size() && std::strcmp(names[i], name) != 0) ++i;
  return i;
}

// "no <what> 'name' (<what>s: a, b, c)", cut to the sink's size.
mtlite_status not_found(const Sink& sink, const char* what, const char* name, const std::vector<const char*>& names) noexcept {
  if (!sink.text || !sink.size) return MTLITE_ERROR_NOT_FOUND;
  int n = std::snprintf(sink.text, sink.size, "no %s '%s' in the model (%ss:", what, name, what);
  for (std::size_t i = 0; i < names.size() && n > 0 && static_cast<std::size_t>(n) < sink.size; ++i)
    n += std::snprintf(sink.text + n, sink.size - static_cast<std::size_t>(n), "%s %s", i ? "," : "", names[i]);
  if (n > 0 && static_cast<std::size_t>(n) < sink.size)
    std::snprintf(sink.text + n, sink.size - static_cast<std::size_t>(n), ")");
  return MTLITE_ERROR_NOT_FOUND;
}

// The calling thread's last failure on a model, with the model it was on.
struct ThreadError {
  std::uint64_t model = 0;  // mtlite_model::serial; 0: none
  char text[kMessageBytes] = {};
};
thread_local ThreadError t_model_error;

std::atomic<std::uint64_t> g_next_serial{1};

mtlite_feature_kind kind_of(const mtlite::Feature& f) noexcept {
  switch (f.kind) {
    case mtlite::FeatureKind::dense: return MTLITE_FEATURE_DENSE;
    case mtlite::FeatureKind::categorical: return MTLITE_FEATURE_CATEGORICAL;
    case mtlite::FeatureKind::multi_hot: return MTLITE_FEATURE_MULTI_HOT;
  }
  return MTLITE_FEATURE_DENSE;
}

const char* kind_name(mtlite_feature_kind k) noexcept {
  return k == MTLITE_FEATURE_DENSE ? "dense" : k == MTLITE_FEATURE_CATEGORICAL ? "categorical" : "multi-hot";
}

const char* setter_of(mtlite_feature_kind k) noexcept {
  return k == MTLITE_FEATURE_DENSE ? "mtlite_session_set_dense"
         : k == MTLITE_FEATURE_CATEGORICAL ? "mtlite_session_set_ids"
                                           : "mtlite_session_set_bags";
}

}  // namespace

struct mtlite_model {
  mtlite_model(std::shared_ptr<const void> image, mtlite::Model m) : storage(std::move(image)), model(std::move(m)) {
    const mtlite::Spec& spec = model.spec();
    for (const mtlite::Task& t : spec.tasks) task_names.push_back(t.name.c_str());
    for (std::size_t o = 0; o < model.num_outputs(); ++o) {
      const int k = spec.output_task(o);
      output_names.push_back(k >= 0 ? spec.tasks[static_cast<std::size_t>(k)].name.c_str() : spec.esmm->ctcvr.c_str());
    }
    std::size_t counts[3] = {0, 0, 0};
    for (const mtlite::Feature& f : spec.features) {
      feature_names.push_back(f.name.c_str());
      kind_index.push_back(counts[kind_of(f)]++);
    }
    dense_count = counts[MTLITE_FEATURE_DENSE];
    id_count = counts[MTLITE_FEATURE_CATEGORICAL];
    bag_count = counts[MTLITE_FEATURE_MULTI_HOT];
    for (std::size_t g = 0; g < model.num_gates(); ++g) gate_names.push_back(model.gate_name(g).c_str());
    // The binding is read once here, so that threads sharing the model never race to make it.
    if (model.metadata().find("data") == nullptr) {
      ids_status = MTLITE_ERROR_UNSUPPORTED;
    } else {
      try {
        ids.emplace(model);
      } catch (const mtlite::Error& e) {
        ids_status = MTLITE_ERROR_FORMAT;
        ids_error = e.what();
      }
    }
    if (ids_status == MTLITE_ERROR_UNSUPPORTED)
      ids_error = "the model carries no data binding (it was not trained by mtlite train, or was built in code): "
                  "the ids of its categorical features come from the caller (mtlite_hash_string for hashing features)";
  }

  Sink sink() const noexcept {
    t_model_error.model = serial;
    return {t_model_error.text, sizeof t_model_error.text};
  }
  const mtlite::Feature& feature(std::size_t f) const noexcept { return model.spec().features[f]; }

  std::shared_ptr<const void> storage;  // the bytes the model runs from, unless the caller's
  mtlite::Model model;
  std::vector<const char*> task_names, output_names, feature_names, gate_names;
  std::vector<std::size_t> kind_index;  // per feature: its index among the features of its kind
  std::size_t dense_count = 0, id_count = 0, bag_count = 0;
  std::optional<mtlite::FeatureIds> ids;
  mtlite_status ids_status = MTLITE_OK;
  std::string ids_error;
  std::uint64_t serial = g_next_serial.fetch_add(1, std::memory_order_relaxed);
  std::atomic<std::size_t> sessions{0};
};

struct mtlite_session {
  static constexpr std::size_t kUnset = std::numeric_limits<std::size_t>::max();

  mtlite_session(const mtlite_model& m, std::size_t max_batch, bool keep_gates)
      : owner(&m),
        session(m.model, max_batch, keep_gates),
        keep_gates(keep_gates),
        dense(max_batch * m.dense_count),
        ids(max_batch * m.id_count),
        bag_ids(m.bag_count),
        bag_offsets(m.bag_count, std::vector<std::uint32_t>(max_batch + 1)),
        bags(m.bag_count),
        column_rows(m.feature_names.size(), kUnset) {}

  Sink sink() noexcept { return {message, sizeof message}; }
  std::size_t max_batch() const noexcept { return session.max_batch(); }

  const mtlite_model* owner;
  mtlite::Session session;
  bool keep_gates;
  bool has_result = false;
  std::vector<float> dense;         // max_batch x dense features, row-major (Batch::dense)
  std::vector<std::int64_t> ids;    // max_batch x categorical features (Batch::ids)
  std::vector<std::vector<std::int64_t>> bag_ids;       // per multi-hot feature
  std::vector<std::vector<std::uint32_t>> bag_offsets;  // per multi-hot feature, max_batch + 1
  std::vector<mtlite::Bag> bags;    // filled by predict: Batch::bags
  std::vector<std::size_t> column_rows;  // per feature: the rows last set, or kUnset
  char message[kMessageBytes] = {};
};

namespace {

// Model and session checks: each returns OK or the failure, with its message.
mtlite_status check_index(const Sink& sink, const char* what, std::size_t i, std::size_t n) noexcept {
  if (i < n) return MTLITE_OK;
  return sink.fail(MTLITE_ERROR_OUT_OF_RANGE, "%s index %zu out of range: the model has %zu", what, i, n);
}

mtlite_status null_pointer(const Sink& sink, const char* function, const char* argument) noexcept {
  return sink.fail(MTLITE_ERROR_INVALID_ARGUMENT, "%s: %s is NULL", function, argument);
}

// Name -> index for the *_by_name calls and the *_index queries.
mtlite_status lookup(const Sink& sink, const char* what, const std::vector<const char*>& names, const char* name,
                     std::size_t* index) noexcept {
  const std::size_t i = find_name(names, name);
  if (i == names.size()) return not_found(sink, what, name, names);
  *index = i;
  return MTLITE_OK;
}

// The feature a setter writes, checked: in range, of the setter's kind, rows within the batch.
// `values` may be NULL for 0 rows, except a bag's offsets (rows + 1 of them).
mtlite_status check_column(mtlite_session* s, std::size_t feature, mtlite_feature_kind kind, const void* values,
                           std::size_t rows, const char* function) noexcept {
  const Sink sink = s->sink();
  const mtlite_model& m = *s->owner;
  if (const mtlite_status st = check_index(sink, "feature", feature, m.feature_names.size())) return st;
  const mtlite_feature_kind actual = kind_of(m.feature(feature));
  if (actual != kind)
    return sink.fail(MTLITE_ERROR_INVALID_ARGUMENT, "%s: feature '%s' is %s, not %s: set it with %s", function,
                     m.feature_names[feature], kind_name(actual), kind_name(kind), setter_of(actual));
  if (rows > s->max_batch())
    return sink.fail(MTLITE_ERROR_OUT_OF_RANGE, "%s: %zu rows for feature '%s'; this session takes at most %zu",
                     function, rows, m.feature_names[feature], s->max_batch());
  if (!values && (rows || kind == MTLITE_FEATURE_MULTI_HOT))
    return null_pointer(sink, function, kind == MTLITE_FEATURE_MULTI_HOT ? "offsets" : "the values");
  return MTLITE_OK;
}

template <class T>
mtlite_status set_column(mtlite_session* s, std::size_t feature, mtlite_feature_kind kind, const T* values,
                         std::size_t rows, std::vector<T> mtlite_session::*matrix, std::size_t mtlite_model::*width,
                         const char* function) noexcept {
  if (!s) return MTLITE_ERROR_NULL_HANDLE;
  if (const mtlite_status st = check_column(s, feature, kind, values, rows, function)) return st;
  const std::size_t k = s->owner->kind_index[feature], stride = s->owner->*width;
  T* out = (s->*matrix).data();
  for (std::size_t r = 0; r < rows; ++r) out[r * stride + k] = values[r];
  s->column_rows[feature] = rows;
  s->has_result = false;
  return MTLITE_OK;
}

mtlite_status set_bag_column(mtlite_session* s, std::size_t feature, const std::int64_t* ids, std::size_t id_count,
                             const std::uint32_t* offsets, std::size_t rows) noexcept {
  const char* function = "mtlite_session_set_bags";
  if (!s) return MTLITE_ERROR_NULL_HANDLE;
  if (const mtlite_status st = check_column(s, feature, MTLITE_FEATURE_MULTI_HOT, offsets, rows, function)) return st;
  const Sink sink = s->sink();
  const char* name = s->owner->feature_names[feature];
  if (!ids && id_count) return null_pointer(sink, function, "ids");
  for (std::size_t r = 0; r < rows; ++r)
    if (offsets[r] > offsets[r + 1])
      return sink.fail(MTLITE_ERROR_INVALID_ARGUMENT, "%s: bag '%s': offsets decrease at row %zu (%u > %u)", function,
                       name, r, static_cast<unsigned>(offsets[r]), static_cast<unsigned>(offsets[r + 1]));
  if (offsets[rows] > id_count)
    return sink.fail(MTLITE_ERROR_INVALID_ARGUMENT, "%s: bag '%s': offsets reach %u but there are %zu ids", function,
                     name, static_cast<unsigned>(offsets[rows]), id_count);
  // Unset until the copy is whole: a copy that fails half way leaves no column to predict from.
  s->column_rows[feature] = mtlite_session::kUnset;
  s->has_result = false;
  return guarded(sink, MTLITE_ERROR_INTERNAL, [&] {
    const std::size_t b = s->owner->kind_index[feature];
    s->bag_ids[b].assign(ids, ids + id_count);
    std::memcpy(s->bag_offsets[b].data(), offsets, (rows + 1) * sizeof *offsets);
    s->column_rows[feature] = rows;
    return MTLITE_OK;
  });
}

mtlite_status result_check(const mtlite_session* s, std::size_t output, const char* function) noexcept {
  Sink sink = const_cast<mtlite_session*>(s)->sink();
  if (const mtlite_status st = check_index(sink, "output", output, s->owner->output_names.size())) return st;
  if (!s->has_result)
    return sink.fail(MTLITE_ERROR_NO_RESULT, "%s: no scores: no successful mtlite_session_predict since the inputs last changed", function);
  return MTLITE_OK;
}

// The code of a predict Status (core/error.hpp).
mtlite_status status_of(mtlite::StatusCode code) noexcept {
  switch (code) {
    case mtlite::StatusCode::ok: return MTLITE_OK;
    case mtlite::StatusCode::too_many_rows: return MTLITE_ERROR_OUT_OF_RANGE;
    case mtlite::StatusCode::wrong_size:
    case mtlite::StatusCode::not_finite:
    case mtlite::StatusCode::bad_bag: return MTLITE_ERROR_INVALID_ARGUMENT;
    case mtlite::StatusCode::overflow: return MTLITE_ERROR_NOT_FINITE;
  }
  return MTLITE_ERROR_INTERNAL;
}

// Whether the file can be opened for reading: a missing or unreadable file is an IO error, told
// apart from a bad one before the model's own loader (whose every error is an mtlite::Error)
// reads it. Non-blocking, so that a FIFO with no writer does not hang here.
bool openable(const char* path, const Sink& sink) noexcept {
#if !defined(_WIN32)
  const int fd = ::open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    sink.fail(MTLITE_ERROR_IO, "cannot open model file '%s': %s", path, std::strerror(err));
    return false;
  }
  struct stat st;
  const bool directory = ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
  ::close(fd);
  if (directory) {
    sink.fail(MTLITE_ERROR_IO, "cannot open model file '%s': it is a directory", path);
    return false;
  }
#else
  std::FILE* f = std::fopen(path, "rb");
  if (!f) {
    sink.fail(MTLITE_ERROR_IO, "cannot open model file '%s'", path);
    return false;
  }
  std::fclose(f);
#endif
  return true;
}

mtlite::LoadOptions load_options(std::uint32_t flags) noexcept {
  mtlite::LoadOptions options;
  options.verify_checksum = (flags & MTLITE_OPEN_VERIFY_CHECKSUM) != 0;
  return options;  // the self-test runs apart, so that its failure has its own code
}

// The last step of both opens: the handle, with the self-test run if asked for.
mtlite_status finish_open(std::unique_ptr<mtlite_model> m, std::uint32_t flags, mtlite_model** out, const Sink& sink) {
  if (flags & MTLITE_OPEN_SELFTEST) {
    if (!m->model.has_selftest())
      return sink.fail(MTLITE_ERROR_UNSUPPORTED, "MTLITE_OPEN_SELFTEST: the model carries no self-test");
    try {
      m->model.verify();
    } catch (const mtlite::Error& e) {
      return sink.fail(MTLITE_ERROR_SELFTEST_FAILED, "%s", e.what());
    }
  }
  *out = m.release();
  return MTLITE_OK;
}

constexpr std::uint32_t kOpenFlags = MTLITE_OPEN_VERIFY_CHECKSUM | MTLITE_OPEN_SELFTEST | MTLITE_OPEN_IN_PLACE;

}  // namespace

extern "C" {

MTLITE_API const char* mtlite_version(void) { return MTLITE_VERSION_STRING; }

MTLITE_API int mtlite_abi_version(void) { return MTLITE_C_ABI_VERSION; }

MTLITE_API const char* mtlite_status_name(mtlite_status status) {
  switch (status) {
    case MTLITE_OK: return "MTLITE_OK";
    case MTLITE_ERROR_NULL_HANDLE: return "MTLITE_ERROR_NULL_HANDLE";
    case MTLITE_ERROR_INVALID_ARGUMENT: return "MTLITE_ERROR_INVALID_ARGUMENT";
    case MTLITE_ERROR_NOT_FOUND: return "MTLITE_ERROR_NOT_FOUND";
    case MTLITE_ERROR_OUT_OF_RANGE: return "MTLITE_ERROR_OUT_OF_RANGE";
    case MTLITE_ERROR_IO: return "MTLITE_ERROR_IO";
    case MTLITE_ERROR_FORMAT: return "MTLITE_ERROR_FORMAT";
    case MTLITE_ERROR_SELFTEST_FAILED: return "MTLITE_ERROR_SELFTEST_FAILED";
    case MTLITE_ERROR_UNSUPPORTED: return "MTLITE_ERROR_UNSUPPORTED";
    case MTLITE_ERROR_NO_RESULT: return "MTLITE_ERROR_NO_RESULT";
    case MTLITE_ERROR_NOT_FINITE: return "MTLITE_ERROR_NOT_FINITE";
    case MTLITE_ERROR_IN_USE: return "MTLITE_ERROR_IN_USE";
    case MTLITE_ERROR_OUT_OF_MEMORY: return "MTLITE_ERROR_OUT_OF_MEMORY";
    case MTLITE_ERROR_INTERNAL: return "MTLITE_ERROR_INTERNAL";
  }
  return "unknown status";
}

MTLITE_API const char* mtlite_kernel_level(void) { return mtlite::kernels::table().level; }

// ---- Models

MTLITE_API mtlite_status mtlite_model_open(const char* path, uint32_t flags, mtlite_model** model, char* error,
                                           size_t error_size) {
  const Sink sink{error, error_size};
  if (error && error_size) error[0] = '\0';
  if (!path) return null_pointer(sink, "mtlite_model_open", "path");
  if (!model) return null_pointer(sink, "mtlite_model_open", "model");
  if (flags & MTLITE_OPEN_IN_PLACE)
    return sink.fail(MTLITE_ERROR_INVALID_ARGUMENT, "mtlite_model_open: MTLITE_OPEN_IN_PLACE is for mtlite_model_open_memory");
  if (flags & ~kOpenFlags)
    return sink.fail(MTLITE_ERROR_INVALID_ARGUMENT, "mtlite_model_open: unknown flags 0x%x", static_cast<unsigned>(flags));
  if (!openable(path, sink)) return MTLITE_ERROR_IO;
  return guarded(sink, MTLITE_ERROR_FORMAT, [&] {
    // Model::load maps the file and keeps the mapping: storage stays empty.
    auto m = std::make_unique<mtlite_model>(nullptr, mtlite::Model::load(path, load_options(flags)));
    return finish_open(std::move(m), flags, model, sink);
  });
}

MTLITE_API mtlite_status mtlite_model_open_memory(const void* data, size_t size, uint32_t flags, mtlite_model** model,
                                                  char* error, size_t error_size) {
  const Sink sink{error, error_size};
  if (error && error_size) error[0] = '\0';
  if (!data) return null_pointer(sink, "mtlite_model_open_memory", "data");
  if (!model) return null_pointer(sink, "mtlite_model_open_memory", "model");
  if (flags & ~kOpenFlags)
    return sink.fail(MTLITE_ERROR_INVALID_ARGUMENT, "mtlite_model_open_memory: unknown flags 0x%x",
                     static_cast<unsigned>(flags));
  const bool in_place = (flags & MTLITE_OPEN_IN_PLACE) != 0;
  if (in_place && reinterpret_cast<std::uintptr_t>(data) % mtlite::kAlign != 0)
    return sink.fail(MTLITE_ERROR_INVALID_ARGUMENT,
                     "mtlite_model_open_memory: MTLITE_OPEN_IN_PLACE needs a %zu-byte aligned buffer", mtlite::kAlign);
  return guarded(sink, MTLITE_ERROR_FORMAT, [&] {
    std::shared_ptr<mtlite::AlignedBuffer<std::byte>> copy;
    const void* image = data;
    if (!in_place) {
      copy = std::make_shared<mtlite::AlignedBuffer<std::byte>>(size);
      if (size) std::memcpy(copy->data(), data, size);
      image = copy->data();
    }
    // An aligned image runs in place: the copy (or the caller's buffer) is the model's storage.
    auto m = std::make_unique<mtlite_model>(std::move(copy), mtlite::Model::from_memory(image, size, load_options(flags)));
    return finish_open(std::move(m), flags, model, sink);
  });
}

MTLITE_API mtlite_status mtlite_model_free(mtlite_model* model) {
  if (!model) return MTLITE_OK;
  if (const std::size_t n = model->sessions.load()) {
    return model->sink().fail(MTLITE_ERROR_IN_USE, "mtlite_model_free: %zu sessions of the model remain: free them first", n);
  }
  delete model;
  return MTLITE_OK;
}

MTLITE_API const char* mtlite_model_last_error(const mtlite_model* model) {
  if (!model) return "the model handle is NULL";
  return t_model_error.model == model->serial ? t_model_error.text : "";
}

MTLITE_API mtlite_status mtlite_model_has_selftest(const mtlite_model* model, int* has_selftest) {
  if (!model) return MTLITE_ERROR_NULL_HANDLE;
  if (!has_selftest) return null_pointer(model->sink(), "mtlite_model_has_selftest", "has_selftest");
  *has_selftest = model->model.has_selftest() ? 1 : 0;
  return MTLITE_OK;
}

MTLITE_API mtlite_status mtlite_model_selftest(const mtlite_model* model) {
  if (!model) return MTLITE_ERROR_NULL_HANDLE;
  const Sink sink = model->sink();
  if (!model->model.has_selftest())
    return sink.fail(MTLITE_ERROR_UNSUPPORTED, "the model carries no self-test (mtlite convert stores one)");
  return guarded(sink, MTLITE_ERROR_SELFTEST_FAILED, [&] {
    model->model.verify();
    return MTLITE_OK;
  });
}

#define MTLITE_CHECK_MODEL(function, out)                        \
  if (!model) return MTLITE_ERROR_NULL_HANDLE;                   \
  if (!(out)) return null_pointer(model->sink(), function, #out)

}  // extern "C"

namespace {

// The model's four lists of names (tasks, outputs, features, gates): count, name by index,
// index by name, each checked.
using Names = std::vector<const char*> mtlite_model::*;

mtlite_status count_of(const mtlite_model* model, Names names, size_t* count, const char* function) noexcept {
  MTLITE_CHECK_MODEL(function, count);
  *count = (model->*names).size();
  return MTLITE_OK;
}

mtlite_status name_at(const mtlite_model* model, Names names, const char* what, size_t i, const char** name,
                      const char* function) noexcept {
  MTLITE_CHECK_MODEL(function, name);
  if (const mtlite_status st = check_index(model->sink(), what, i, (model->*names).size())) return st;
  *name = (model->*names)[i];
  return MTLITE_OK;
}

mtlite_status index_of(const mtlite_model* model, Names names, const char* what, const char* name, size_t* index,
                       const char* function) noexcept {
  MTLITE_CHECK_MODEL(function, index);
  if (!name) return null_pointer(model->sink(), function, "name");
  return lookup(model->sink(), what, model->*names, name, index);
}

}  // namespace

extern "C" {

MTLITE_API mtlite_status mtlite_model_task_count(const mtlite_model* model, size_t* count) {
  return count_of(model, &mtlite_model::task_names, count, "mtlite_model_task_count");
}
MTLITE_API mtlite_status mtlite_model_task_name(const mtlite_model* model, size_t task, const char** name) {
  return name_at(model, &mtlite_model::task_names, "task", task, name, "mtlite_model_task_name");
}
MTLITE_API mtlite_status mtlite_model_task_index(const mtlite_model* model, const char* name, size_t* task) {
  return index_of(model, &mtlite_model::task_names, "task", name, task, "mtlite_model_task_index");
}

MTLITE_API mtlite_status mtlite_model_output_count(const mtlite_model* model, size_t* count) {
  return count_of(model, &mtlite_model::output_names, count, "mtlite_model_output_count");
}
MTLITE_API mtlite_status mtlite_model_output_name(const mtlite_model* model, size_t output, const char** name) {
  return name_at(model, &mtlite_model::output_names, "output", output, name, "mtlite_model_output_name");
}
MTLITE_API mtlite_status mtlite_model_output_index(const mtlite_model* model, const char* name, size_t* output) {
  return index_of(model, &mtlite_model::output_names, "output", name, output, "mtlite_model_output_index");
}

MTLITE_API mtlite_status mtlite_model_feature_count(const mtlite_model* model, size_t* count) {
  return count_of(model, &mtlite_model::feature_names, count, "mtlite_model_feature_count");
}
MTLITE_API mtlite_status mtlite_model_feature_name(const mtlite_model* model, size_t feature, const char** name) {
  return name_at(model, &mtlite_model::feature_names, "feature", feature, name, "mtlite_model_feature_name");
}
MTLITE_API mtlite_status mtlite_model_feature_index(const mtlite_model* model, const char* name, size_t* feature) {
  return index_of(model, &mtlite_model::feature_names, "feature", name, feature, "mtlite_model_feature_index");
}

MTLITE_API mtlite_status mtlite_model_feature_kind(const mtlite_model* model, size_t feature, mtlite_feature_kind* kind) {
  MTLITE_CHECK_MODEL("mtlite_model_feature_kind", kind);
  if (const mtlite_status st = check_index(model->sink(), "feature", feature, model->feature_names.size())) return st;
  *kind = kind_of(model->feature(feature));
  return MTLITE_OK;
}

MTLITE_API mtlite_status mtlite_model_feature_mapping(const mtlite_model* model, size_t feature,
                                                      mtlite_id_mapping* mapping) {
  MTLITE_CHECK_MODEL("mtlite_model_feature_mapping", mapping);
  if (const mtlite_status st = check_index(model->sink(), "feature", feature, model->feature_names.size())) return st;
  const mtlite::Feature& f = model->feature(feature);
  *mapping = !f.has_embedding()                           ? MTLITE_MAPPING_NONE
             : f.mapping == mtlite::IdMapping::vocabulary ? MTLITE_MAPPING_VOCABULARY
                                                          : MTLITE_MAPPING_HASHING;
  return MTLITE_OK;
}

MTLITE_API mtlite_status mtlite_model_feature_size(const mtlite_model* model, size_t feature, uint64_t* size) {
  MTLITE_CHECK_MODEL("mtlite_model_feature_size", size);
  if (const mtlite_status st = check_index(model->sink(), "feature", feature, model->feature_names.size())) return st;
  const mtlite::Feature& f = model->feature(feature);
  *size = f.has_embedding() ? f.size : 0;
  return MTLITE_OK;
}

MTLITE_API mtlite_status mtlite_model_gate_count(const mtlite_model* model, size_t* count) {
  return count_of(model, &mtlite_model::gate_names, count, "mtlite_model_gate_count");
}
MTLITE_API mtlite_status mtlite_model_gate_name(const mtlite_model* model, size_t gate, const char** name) {
  return name_at(model, &mtlite_model::gate_names, "gate", gate, name, "mtlite_model_gate_name");
}

MTLITE_API mtlite_status mtlite_model_gate_width(const mtlite_model* model, size_t gate, size_t* width) {
  MTLITE_CHECK_MODEL("mtlite_model_gate_width", width);
  if (const mtlite_status st = check_index(model->sink(), "gate", gate, model->gate_names.size())) return st;
  *width = model->model.gate_width(gate);
  return MTLITE_OK;
}

// ---- Raw values to ids

}  // extern "C"

namespace {

// What every id call checks before FeatureIds: the feature, its kind, the binding.
mtlite_status check_id_feature(const mtlite_model* model, std::size_t feature, bool bag, const char* function) noexcept {
  const Sink sink = model->sink();
  if (const mtlite_status st = check_index(sink, "feature", feature, model->feature_names.size())) return st;
  const mtlite_feature_kind kind = kind_of(model->feature(feature));
  const mtlite_feature_kind wanted = bag ? MTLITE_FEATURE_MULTI_HOT : kind;
  if (kind == MTLITE_FEATURE_DENSE || kind != wanted)
    return sink.fail(MTLITE_ERROR_INVALID_ARGUMENT, "%s: feature '%s' is %s%s", function, model->feature_names[feature],
                     kind_name(kind), kind == MTLITE_FEATURE_DENSE ? ": it takes a float, not an id" : ", not multi-hot");
  if (!model->ids) return sink.fail(model->ids_status, "%s", model->ids_error.c_str());
  return MTLITE_OK;
}

}  // namespace

extern "C" {

MTLITE_API mtlite_status mtlite_model_id_string(const mtlite_model* model, size_t feature, const char* value,
                                                int64_t* id) {
  MTLITE_CHECK_MODEL("mtlite_model_id_string", id);
  if (!value) return null_pointer(model->sink(), "mtlite_model_id_string", "value");
  if (const mtlite_status st = check_id_feature(model, feature, false, "mtlite_model_id_string")) return st;
  return guarded(model->sink(), MTLITE_ERROR_INVALID_ARGUMENT, [&] {
    *id = model->ids->id(feature, std::string_view(value));
    return MTLITE_OK;
  });
}

MTLITE_API mtlite_status mtlite_model_id_int(const mtlite_model* model, size_t feature, int64_t value, int64_t* id) {
  MTLITE_CHECK_MODEL("mtlite_model_id_int", id);
  if (const mtlite_status st = check_id_feature(model, feature, false, "mtlite_model_id_int")) return st;
  return guarded(model->sink(), MTLITE_ERROR_INVALID_ARGUMENT, [&] {
    *id = model->ids->id(feature, static_cast<std::int64_t>(value));
    return MTLITE_OK;
  });
}

MTLITE_API mtlite_status mtlite_model_bag_ids(const mtlite_model* model, size_t feature, const char* field,
                                              int64_t* ids, size_t capacity, size_t* count) {
  MTLITE_CHECK_MODEL("mtlite_model_bag_ids", count);
  if (!field) return null_pointer(model->sink(), "mtlite_model_bag_ids", "field");
  if (!ids && capacity) return null_pointer(model->sink(), "mtlite_model_bag_ids", "ids");
  if (const mtlite_status st = check_id_feature(model, feature, true, "mtlite_model_bag_ids")) return st;
  return guarded(model->sink(), MTLITE_ERROR_INVALID_ARGUMENT, [&] {
    std::size_t n = 0;
    model->ids->for_each_id(feature, field, [&](std::int64_t x) {
      if (n < capacity) ids[n] = x;
      ++n;
    });
    *count = n;
    if (n <= capacity) return MTLITE_OK;
    return model->sink().fail(MTLITE_ERROR_OUT_OF_RANGE, "mtlite_model_bag_ids: the field holds %zu ids, room for %zu",
                              n, capacity);
  });
}

MTLITE_API mtlite_status mtlite_hash_string(const char* data, size_t length, int64_t* id) {
  if (!id || (!data && length)) return MTLITE_ERROR_INVALID_ARGUMENT;
  *id = static_cast<int64_t>(mtlite::hash_string(std::string_view(data ? data : "", length)));
  return MTLITE_OK;
}

// ---- Sessions

MTLITE_API mtlite_status mtlite_session_new(const mtlite_model* model, size_t max_batch, uint32_t flags,
                                            mtlite_session** session) {
  MTLITE_CHECK_MODEL("mtlite_session_new", session);
  const Sink sink = model->sink();
  if (flags & ~MTLITE_SESSION_KEEP_GATES)
    return sink.fail(MTLITE_ERROR_INVALID_ARGUMENT, "mtlite_session_new: unknown flags 0x%x", static_cast<unsigned>(flags));
  if (max_batch == 0) return sink.fail(MTLITE_ERROR_INVALID_ARGUMENT, "mtlite_session_new: max_batch must be at least 1");
  // A batch whose buffers no memory could hold is refused before any size computed from it
  // can overflow (the session's and the Executor's, which multiply max_batch by a row's width).
  const mtlite::internal::Plan& plan = model->model.plan();
  const std::size_t row_floats = model->dense_count + 2 * model->id_count + model->bag_count + model->output_names.size() +
                                 plan.gate_width + plan.scratch_per_row() + 1;
  if (max_batch > std::numeric_limits<std::size_t>::max() / 64 / row_floats)
    return sink.fail(MTLITE_ERROR_OUT_OF_MEMORY, "mtlite_session_new: max_batch %zu is more than memory can hold", max_batch);
  return guarded(sink, MTLITE_ERROR_INVALID_ARGUMENT, [&] {
    *session = new mtlite_session(*model, max_batch, (flags & MTLITE_SESSION_KEEP_GATES) != 0);
    const_cast<mtlite_model*>(model)->sessions.fetch_add(1);
    return MTLITE_OK;
  });
}

MTLITE_API mtlite_status mtlite_session_free(mtlite_session* session) {
  if (!session) return MTLITE_OK;
  const_cast<mtlite_model*>(session->owner)->sessions.fetch_sub(1);
  delete session;
  return MTLITE_OK;
}

MTLITE_API const char* mtlite_session_last_error(const mtlite_session* session) {
  return session ? session->message : "the session handle is NULL";
}

MTLITE_API mtlite_status mtlite_session_max_batch(const mtlite_session* session, size_t* max_batch) {
  if (!session) return MTLITE_ERROR_NULL_HANDLE;
  if (!max_batch) return null_pointer(const_cast<mtlite_session*>(session)->sink(), "mtlite_session_max_batch", "max_batch");
  *max_batch = session->max_batch();
  return MTLITE_OK;
}

MTLITE_API mtlite_status mtlite_session_set_dense(mtlite_session* session, size_t feature, const float* values,
                                                  size_t rows) {
  return set_column(session, feature, MTLITE_FEATURE_DENSE, values, rows, &mtlite_session::dense,
                    &mtlite_model::dense_count, "mtlite_session_set_dense");
}

MTLITE_API mtlite_status mtlite_session_set_ids(mtlite_session* session, size_t feature, const int64_t* ids,
                                                size_t rows) {
  static_assert(std::is_same_v<int64_t, std::int64_t>);
  return set_column(session, feature, MTLITE_FEATURE_CATEGORICAL, ids, rows, &mtlite_session::ids,
                    &mtlite_model::id_count, "mtlite_session_set_ids");
}

MTLITE_API mtlite_status mtlite_session_set_bags(mtlite_session* session, size_t feature, const int64_t* ids,
                                                 size_t id_count, const uint32_t* offsets, size_t rows) {
  return set_bag_column(session, feature, ids, id_count, offsets, rows);
}

}  // extern "C"

namespace {

// The feature a *_by_name setter names, or the failure.
mtlite_status column_by_name(mtlite_session* s, const char* name, const char* function, std::size_t* feature) noexcept {
  if (!name) return null_pointer(s->sink(), function, "name");
  return lookup(s->sink(), "feature", s->owner->feature_names, name, feature);
}

}  // namespace

extern "C" {

MTLITE_API mtlite_status mtlite_session_set_dense_by_name(mtlite_session* session, const char* name,
                                                          const float* values, size_t rows) {
  if (!session) return MTLITE_ERROR_NULL_HANDLE;
  std::size_t f = 0;
  if (const mtlite_status st = column_by_name(session, name, "mtlite_session_set_dense_by_name", &f)) return st;
  return mtlite_session_set_dense(session, f, values, rows);
}

MTLITE_API mtlite_status mtlite_session_set_ids_by_name(mtlite_session* session, const char* name,
                                                        const int64_t* ids, size_t rows) {
  if (!session) return MTLITE_ERROR_NULL_HANDLE;
  std::size_t f = 0;
  if (const mtlite_status st = column_by_name(session, name, "mtlite_session_set_ids_by_name", &f)) return st;
  return mtlite_session_set_ids(session, f, ids, rows);
}

MTLITE_API mtlite_status mtlite_session_set_bags_by_name(mtlite_session* session, const char* name,
                                                         const int64_t* ids, size_t id_count,
                                                         const uint32_t* offsets, size_t rows) {
  if (!session) return MTLITE_ERROR_NULL_HANDLE;
  std::size_t f = 0;
  if (const mtlite_status st = column_by_name(session, name, "mtlite_session_set_bags_by_name", &f)) return st;
  return mtlite_session_set_bags(session, f, ids, id_count, offsets, rows);
}

// Allocation-free: the batch is spans over the session's columns, the messages fixed buffers.
MTLITE_API mtlite_status mtlite_session_predict(mtlite_session* session, size_t rows) {
  if (!session) return MTLITE_ERROR_NULL_HANDLE;
  mtlite_session& s = *session;
  const mtlite_model& m = *s.owner;
  const Sink sink = s.sink();
  s.has_result = false;
  if (rows > s.max_batch())
    return sink.fail(MTLITE_ERROR_OUT_OF_RANGE, "mtlite_session_predict: %zu rows; this session takes at most %zu", rows,
                     s.max_batch());
  for (std::size_t f = 0; f < s.column_rows.size(); ++f) {
    if (s.column_rows[f] == rows) continue;
    if (s.column_rows[f] == mtlite_session::kUnset)
      return sink.fail(MTLITE_ERROR_INVALID_ARGUMENT, "mtlite_session_predict: feature '%s' was never set (%s)",
                       m.feature_names[f], setter_of(kind_of(m.feature(f))));
    return sink.fail(MTLITE_ERROR_INVALID_ARGUMENT, "mtlite_session_predict: feature '%s' holds %zu rows, not %zu",
                     m.feature_names[f], s.column_rows[f], rows);
  }
  for (std::size_t b = 0; b < s.bags.size(); ++b)
    s.bags[b] = {{s.bag_ids[b].data(), s.bag_ids[b].size()}, {s.bag_offsets[b].data(), rows + 1}};
  mtlite::Batch batch;
  batch.rows = rows;
  batch.dense = {s.dense.data(), rows * m.dense_count};
  batch.ids = {s.ids.data(), rows * m.id_count};
  batch.bags = {s.bags.data(), s.bags.size()};
  const mtlite::Status st = s.session.predict(batch);
  if (!st) return sink.fail(status_of(st.code()), "%s", st.message());
  s.has_result = true;
  return MTLITE_OK;
}

MTLITE_API mtlite_status mtlite_session_rows(const mtlite_session* session, size_t* rows) {
  if (!session) return MTLITE_ERROR_NULL_HANDLE;
  if (!rows) return null_pointer(const_cast<mtlite_session*>(session)->sink(), "mtlite_session_rows", "rows");
  *rows = session->has_result ? session->session.rows() : 0;
  return MTLITE_OK;
}

MTLITE_API mtlite_status mtlite_session_scores(const mtlite_session* session, size_t output, const float** scores,
                                               size_t* rows) {
  if (!session) return MTLITE_ERROR_NULL_HANDLE;
  Sink sink = const_cast<mtlite_session*>(session)->sink();
  if (!scores) return null_pointer(sink, "mtlite_session_scores", "scores");
  if (!rows) return null_pointer(sink, "mtlite_session_scores", "rows");
  if (const mtlite_status st = result_check(session, output, "mtlite_session_scores")) return st;
  const mtlite::span<const float> all = session->session.scores(output);
  *scores = all.data();
  *rows = all.size();
  return MTLITE_OK;
}

MTLITE_API mtlite_status mtlite_session_scores_by_name(const mtlite_session* session, const char* output,
                                                       const float** scores, size_t* rows) {
  if (!session) return MTLITE_ERROR_NULL_HANDLE;
  Sink sink = const_cast<mtlite_session*>(session)->sink();
  if (!output) return null_pointer(sink, "mtlite_session_scores_by_name", "output");
  std::size_t o = 0;
  if (const mtlite_status st = lookup(sink, "output", session->owner->output_names, output, &o)) return st;
  return mtlite_session_scores(session, o, scores, rows);
}

MTLITE_API mtlite_status mtlite_session_score(const mtlite_session* session, size_t output, size_t row,
                                              float* score) {
  if (!session) return MTLITE_ERROR_NULL_HANDLE;
  Sink sink = const_cast<mtlite_session*>(session)->sink();
  if (!score) return null_pointer(sink, "mtlite_session_score", "score");
  if (const mtlite_status st = result_check(session, output, "mtlite_session_score")) return st;
  if (row >= session->session.rows())
    return sink.fail(MTLITE_ERROR_OUT_OF_RANGE, "mtlite_session_score: row %zu out of range: the last predict scored %zu",
                     row, session->session.rows());
  *score = session->session.score(output, row);
  return MTLITE_OK;
}

MTLITE_API mtlite_status mtlite_session_gate(const mtlite_session* session, size_t gate, size_t row,
                                             const float** weights, size_t* width) {
  if (!session) return MTLITE_ERROR_NULL_HANDLE;
  Sink sink = const_cast<mtlite_session*>(session)->sink();
  if (!weights) return null_pointer(sink, "mtlite_session_gate", "weights");
  if (!width) return null_pointer(sink, "mtlite_session_gate", "width");
  if (const mtlite_status st = check_index(sink, "gate", gate, session->owner->gate_names.size())) return st;
  if (!session->keep_gates)
    return sink.fail(MTLITE_ERROR_UNSUPPORTED, "mtlite_session_gate: the session keeps no gates (MTLITE_SESSION_KEEP_GATES)");
  if (!session->has_result)
    return sink.fail(MTLITE_ERROR_NO_RESULT, "mtlite_session_gate: no successful mtlite_session_predict since the inputs last changed");
  if (row >= session->session.rows())
    return sink.fail(MTLITE_ERROR_OUT_OF_RANGE, "mtlite_session_gate: row %zu out of range: the last predict scored %zu",
                     row, session->session.rows());
  const mtlite::span<const float> w = session->session.gate(gate, row);
  *weights = w.data();
  *width = w.size();
  return MTLITE_OK;
}

}  // extern "C"
