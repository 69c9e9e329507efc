// mtlite synth mmoe|funnel ... --out FILE [--json]
// Synthetic multi-task data as CSV (docs/synth.md); the generators live in synth.hpp.
#include <mtlite/format/json.hpp>

#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "cli.hpp"
#include "commands.hpp"
#include "output.hpp"
#include "progress.hpp"
#include "synth.hpp"

namespace {

namespace synth = mtlite::synth;

// --help shows the defaults the generators start from.
const synth::MmoeOptions kMmoe;
const synth::FunnelOptions kFunnel;

const cli::Command kCommand{
    "usage: mtlite synth mmoe --correlation P --rows N --out FILE [options]\n"
    "       mtlite synth funnel --rows N --out FILE [options]\n"
    "\n"
    "mmoe: the MMoE paper's two regression tasks with task correlation P (Ma et al. 2018, 3.2):\n"
    "  u1, u2 orthonormal in R^d (Gram-Schmidt on Gaussian vectors), w1 = c u1,\n"
    "  w2 = c (P u1 + sqrt(1-P^2) u2), x ~ N(0, I_d),\n"
    "  y_j = w_j^T x + sum_{i=0..m-1} sin(alpha_i w_j^T x + beta_i) + eps_j, eps_j ~ N(0, noise^2)\n"
    "  with c = 1, m = 10, alpha_i = i+1 (1..10), beta_i = i^2 (0, 1, 4, ..., 81), noise std 0.01.\n"
    "  Columns: x0..x{d-1}, y1, y2. Prints cos(w1, w2), which equals P.\n"
    "funnel: e-commerce impressions, 10 per request, with labels click, cart, purchase from a hidden\n"
    "  model (shared latent user/item factors plus task-specific effects). cart and purchase happen\n"
    "  only after a click; a cart raises the purchase odds but a purchase needs none. Intercepts are\n"
    "  calibrated so that P(click), P(cart), P(purchase) over all impressions match the rates.\n"
    "  Columns: request_id, user_id, item_id, position, device, hour, user_segment, item_category,\n"
    "  price, discount, item_rating, item_popularity, user_activity, user_tenure_days, click, cart,\n"
    "  purchase. Prints the realised rates and the hidden model's own (best attainable) AUCs.\n"
    "\n",
    {
        {"correlation", "P", "the task correlation, in [-1, 1]", "", "mmoe"},
        {"rows", "N", "rows to write"},
        {"out", "FILE",
         "CSV with a header line; gzip when FILE ends in .gz. Written to a temporary file in the same directory "
         "and renamed into place when complete."},
        {"seed", "S",
         "0 .. 2^63-1. The same options and seed give the same bytes on one platform; normal draws use libm "
         "(Box-Muller), so other platforms may differ in last bits. The first n rows never depend on --rows.",
         cli::shown(kMmoe.seed)},
        {"dim", "D", "the input dimension d", cli::shown(kMmoe.dim), "mmoe"},
        {"noise", "S", "the standard deviation of eps_j", cli::shown(kMmoe.noise), "mmoe"},
        {"users", "N", "distinct users", cli::shown(kFunnel.users), "funnel"},
        {"items", "N", "distinct items", cli::shown(kFunnel.items), "funnel"},
        {"click-rate", "R", "P(click) over all impressions", cli::shown(kFunnel.click_rate), "funnel"},
        {"cart-rate", "R", "P(cart) over all impressions", cli::shown(kFunnel.cart_rate), "funnel"},
        {"purchase-rate", "R", "P(purchase) over all impressions", cli::shown(kFunnel.purchase_rate), "funnel"},
        {"json", nullptr, "print one JSON summary object instead of text"},
    }};

// synth's generators write through a Sink; the file behind it is written atomically.
class FileSink final : public synth::Sink {
 public:
  explicit FileSink(cli::AtomicOutput& out) : out_(out) {}
  void write(const char* data, std::size_t size) override { out_.write(data, size); }

 private:
  cli::AtomicOutput& out_;
};

const char* const kRateName[3] = {"click", "cart", "purchase"};

int run_mmoe(const cli::Args& args, const std::string& out) {
  if (const cli::Option* other = args.outside("mmoe"))
    throw mtlite::Error(std::string("--") + other->name + " is a funnel option");
  if (!args.has("correlation")) throw mtlite::Error("mmoe needs --correlation P");
  synth::MmoeOptions o;
  o.correlation = args.real("correlation", 0.0, -1.0, 1.0);
  o.rows = static_cast<std::uint64_t>(args.integer("rows", 0, 0, 1000000000000LL));
  o.dim = static_cast<std::uint32_t>(args.integer("dim", o.dim, 2, synth::kMmoeMaxDim));
  o.seed = static_cast<std::uint64_t>(args.integer("seed", static_cast<long long>(o.seed), 0, 0x7fffffffffffffffLL));
  o.noise = args.real("noise", o.noise, 0.0, 1e6);

  const auto t0 = std::chrono::steady_clock::now();
  synth::MmoeSummary s;
  {
    cli::AtomicOutput file(out);
    FileSink sink(file);
    cli::ProgressBar progress("mtlite synth mmoe", o.rows, "rows", o.rows >= 200000);
    s = synth::generate_mmoe(o, sink, [&](std::uint64_t done) { progress.update(done); });
    file.commit();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (std::fabs(s.cosine - o.correlation) > 1e-6)  // cannot happen unless the construction broke
    throw mtlite::Error("cos(w1, w2) = " + std::to_string(s.cosine) + " differs from the correlation");

  if (args.has("json")) {
    const mtlite::Json j = mtlite::Json::object()
                               .set("generator", "mmoe")
                               .set("out", out)
                               .set("rows", s.rows)
                               .set("columns", s.columns)
                               .set("bytes", cli::file_size(out))
                               .set("seed", o.seed)
                               .set("dim", o.dim)
                               .set("correlation", o.correlation)
                               .set("cosine", s.cosine)
                               .set("noise", o.noise)
                               .set("constants", mtlite::Json::object()
                                                     .set("c", synth::kMmoeScale)
                                                     .set("m", synth::kMmoeTerms)
                                                     .set("alpha", "i+1")
                                                     .set("beta", "i^2"))
                               .set("label_mean", mtlite::Json::array({s.label_mean[0], s.label_mean[1]}))
                               .set("label_stddev", mtlite::Json::array({s.label_stddev[0], s.label_stddev[1]}))
                               .set("label_correlation", s.label_correlation)
                               .set("seconds", seconds);
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("wrote %s: %llu rows, %zu columns (x0..x%u, y1, y2), %s, %.2f s\n", out.c_str(),
              static_cast<unsigned long long>(s.rows), s.columns, o.dim - 1,
              cli::bytes_string(cli::file_size(out)).c_str(), seconds);
  std::printf("cos(w1, w2) = %.9f (requested correlation %g)\n", s.cosine, o.correlation);
  std::printf("y1: mean %.4f, std %.4f; y2: mean %.4f, std %.4f; corr(y1, y2) = %.4f\n", s.label_mean[0],
              s.label_stddev[0], s.label_mean[1], s.label_stddev[1], s.label_correlation);
  return 0;
}

int run_funnel(const cli::Args& args, const std::string& out) {
  if (const cli::Option* other = args.outside("funnel"))
    throw mtlite::Error(std::string("--") + other->name + " is an mmoe option");
  synth::FunnelOptions o;
  o.rows = static_cast<std::uint64_t>(args.integer("rows", 0, 0, 1000000000000LL));
  o.seed = static_cast<std::uint64_t>(args.integer("seed", static_cast<long long>(o.seed), 0, 0x7fffffffffffffffLL));
  o.users = static_cast<std::uint32_t>(args.integer("users", o.users, 1, synth::funnel::kMaxUsers));
  o.items = static_cast<std::uint32_t>(args.integer("items", o.items, 1, synth::funnel::kMaxItems));
  o.click_rate = args.real("click-rate", o.click_rate, 0.0, 1.0);
  o.cart_rate = args.real("cart-rate", o.cart_rate, 0.0, 1.0);
  o.purchase_rate = args.real("purchase-rate", o.purchase_rate, 0.0, 1.0);
  synth::check_funnel_options(o);  // before creating the output file

  const auto t0 = std::chrono::steady_clock::now();
  synth::FunnelSummary s;
  {
    cli::AtomicOutput file(out);
    FileSink sink(file);
    cli::ProgressBar progress("mtlite synth funnel", o.rows, "rows", o.rows >= 200000);
    s = synth::generate_funnel(o, sink, [&](std::uint64_t done) { progress.update(done); });
    file.commit();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  if (args.has("json")) {
    mtlite::Json rates = mtlite::Json::object();
    mtlite::Json oracle = mtlite::Json::object();
    for (int j = 0; j < 3; ++j) {
      rates.set(kRateName[j], mtlite::Json::object()
                                  .set("requested", s.requested[j])
                                  .set("realised", s.realised[j])
                                  .set("positives", s.positives[j]));
      oracle.set(kRateName[j], s.oracle_auc[j]);
    }
    oracle.set("purchase_given_click", s.oracle_cvr_auc).set("purchase_by_click_score", s.transfer_auc);
    const mtlite::Json j =
        mtlite::Json::object()
            .set("generator", "funnel")
            .set("out", out)
            .set("rows", s.rows)
            .set("requests", s.requests)
            .set("columns", s.columns)
            .set("bytes", cli::file_size(out))
            .set("seed", o.seed)
            .set("users", o.users)
            .set("items", o.items)
            .set("rates", std::move(rates))
            .set("purchase_rate_after_click", mtlite::Json::object()
                                                  .set("with_cart", s.purchase_after_cart)
                                                  .set("without_cart", s.purchase_without_cart))
            .set("intercepts", mtlite::Json::object()
                                   .set("click", s.intercepts.click)
                                   .set("cart", s.intercepts.cart)
                                   .set("purchase", s.intercepts.purchase))
            .set("oracle_rows", s.oracle_rows)
            .set("oracle_auc", std::move(oracle))
            .set("seconds", seconds);
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("wrote %s: %llu rows (%llu requests), %zu columns, %s, %.2f s\n", out.c_str(),
              static_cast<unsigned long long>(s.rows), static_cast<unsigned long long>(s.requests), s.columns,
              cli::bytes_string(cli::file_size(out)).c_str(), seconds);
  std::printf("%-9s %10s %10s %10s\n", "label", "requested", "realised", "positives");
  for (int j = 0; j < 3; ++j)
    std::printf("%-9s %10.4f %10.4f %10llu\n", kRateName[j], s.requested[j], s.realised[j],
                static_cast<unsigned long long>(s.positives[j]));
  std::printf("after a click: P(purchase | cart) = %.3f, P(purchase | no cart) = %.3f\n", s.purchase_after_cart,
              s.purchase_without_cart);
  std::printf("hidden model's AUC (best attainable) over %llu rows: click %.3f, cart %.3f, purchase %.3f,\n"
              "  purchase among clicks %.3f; click probability ranking purchases %.3f\n",
              static_cast<unsigned long long>(s.oracle_rows), s.oracle_auc[0], s.oracle_auc[1], s.oracle_auc[2],
              s.oracle_cvr_auc, s.transfer_auc);
  return 0;
}

}  // namespace

int cmd_synth(int argc, char** argv) {
  const cli::Args args(argc, argv, kCommand);
  if (args.has("help")) return kCommand.print_help(stdout, 0);
  if (args.positional.size() != 1 || !args.has("rows") || !args.has("out") || args.get("out").empty()) {
    if (args.positional.size() == 1) std::fputs("mtlite synth: --rows N and --out FILE are required\n\n", stderr);
    return kCommand.print_help(stderr, 2);
  }
  const std::string& generator = args.positional[0];
  if (generator == "mmoe") return run_mmoe(args, args.get("out"));
  if (generator == "funnel") return run_funnel(args, args.get("out"));
  std::fprintf(stderr, "mtlite synth: unknown generator '%s' (mmoe or funnel)\n\n", generator.c_str());
  return kCommand.print_help(stderr, 2);
}
