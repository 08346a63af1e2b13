// The op harness's cases: the reductions over dims.
#include "cases.h"

namespace op_cases {

void reduction_cases() {
    auto var = [](double c) { return [c](const std::vector<double> &v) { return fold_var(v, c); }; };
    reduction(NB_OP_SUM, nb_sum, fold_sum, F(-2, 2), ALL, true);
    reduction(NB_OP_MEAN, nb_mean, fold_mean, F(-2, 2), FLOATS, true);
    reduction(NB_OP_PROD, nb_prod, [](const std::vector<double> &v) {
        return std::accumulate(v.begin(), v.end(), 1.0, std::multiplies<double>()); }, F(-1.5, 1.5),
        ALL, true);
    reduction(NB_OP_MAX, nb_max, [](const std::vector<double> &v) { return *std::max_element(v.begin(), v.end()); },
              F(-3, 3), ALL, true);
    reduction(NB_OP_MIN, nb_min, [](const std::vector<double> &v) { return *std::min_element(v.begin(), v.end()); },
              F(-3, 3), ALL, true);
    reduction(NB_OP_ARGMAX, nb_argmax, [](const std::vector<double> &v) {
        return (double)(std::max_element(v.begin(), v.end()) - v.begin()); }, F(-3, 3), ALL, false);
    reduction(NB_OP_ARGMIN, nb_argmin, [](const std::vector<double> &v) {
        return (double)(std::min_element(v.begin(), v.end()) - v.begin()); }, F(-3, 3), ALL, false);
    reduction(NB_OP_VAR, [](const nb_tensor *x, int n, const int *d, bool k) { return nb_var(x, n, d, 1, k); },
              var(1), F(-2, 2), FLOATS, true);
    reduction(NB_OP_VAR, [](const nb_tensor *x, int n, const int *d, bool k) { return nb_var(x, n, d, 0, k); },
              var(0), F(-2, 2), FLOATS, true, "_population");
    reduction(NB_OP_STD, [](const nb_tensor *x, int n, const int *d, bool k) { return nb_std(x, n, d, 1, k); },
              [](const std::vector<double> &v) { return std::sqrt(fold_var(v, 1)); }, F(-2, 2), FLOATS, true);
    reduction(NB_OP_LOGSUMEXP, nb_logsumexp, [](const std::vector<double> &v) {
        double s = 0;
        for (double a : v) s += std::exp(a);
        return std::log(s); }, F(-3, 3), FLOATS, true);
    for (double p : {2.0, 1.0, 3.0, (double)INFINITY})
        reduction(NB_OP_NORM, [p](const nb_tensor *x, int n, const int *d, bool k) { return nb_norm(x, p, n, d, k); },
                  [p](const std::vector<double> &v) {
                      double s = 0;
                      for (double a : v) s = std::isinf(p) ? std::max(s, std::fabs(a)) : s + std::pow(std::fabs(a), p);
                      return std::isinf(p) ? s : std::pow(s, 1 / p);
                  },
                  F(-2, 2), FLOATS, true, "_p" + std::to_string((int)std::min(p, 99.0)));
}

} // namespace op_cases
