// A program that uses mtlite as another project would: scores one example of the reference model
// and prints "click <score>". tests/consumer/run.sh builds it both ways mtlite is offered.
#include <cstdio>
#include <vector>

#include <mtlite/mtlite.hpp>
#include <mtlite/offline/benchmark_model.hpp>

int main() {
  const mtlite::Spec spec = mtlite::benchmark_spec();
  const mtlite::Model model(spec, mtlite::random_weights(spec, 1));
  mtlite::Session session(model);
  const std::vector<float> x(256, 0.5f);
  if (const mtlite::Status s = session.predict(x); !s) {
    std::fprintf(stderr, "%s\n", s.message());
    return 1;
  }
  std::printf("%s %.6f\n", model.output_name(0).c_str(), static_cast<double>(session.score(0, 0)));
}
