// The communicator (include/nabla/dist.h), run by ctest under mpirun with 2
// and 3 ranks: every collective in every dtype against the values each rank
// computes for itself, in place and out of place, waited for and
// asynchronous; the statuses of bad input, on one rank or on all.
// Rank 0 prints gtest's report; every rank prints its failures.
#include <unistd.h>

#include <cstring>

#include "harness.h"

namespace {

nb_comm *g_comm;
int g_rank, g_size;

const std::vector<nb_dtype> EVERY = {NB_F32, NB_F64, NB_F16, NB_BF16, NB_I32, NB_I64, NB_U8, NB_BOOL};

// Rank r's element i: small integers, so sums, products and averages are
// exact or nearly so in every dtype (bool: whether (r + i) % 3 == 0).
double value(nb_dtype dtype, int r, int64_t i) {
    if (dtype == NB_BOOL) return (r + i) % 3 == 0;
    if (dtype == NB_U8) return (double)((r + i) % 7);
    return (double)((r * 7 + i) % 11) - (nb_dtype_is_float(dtype) || dtype == NB_I32 || dtype == NB_I64 ? 5 : 0);
}

nb_tensor *rank_tensor(nb_dtype dtype, int r, Shape shape) {
    Host h(shape);
    for (int64_t i = 0; i < h.numel(); i++) h.v[i] = value(dtype, r, i);
    T f64(nb_from_host(h.v.data(), (int)shape.size(), shape.data(), NB_F64, nb_cpu()));
    return nb_cast(f64, dtype);
}

double fold(nb_reduce_op op, nb_dtype dtype, int64_t i, int size) {
    double acc = value(dtype, 0, i);
    for (int r = 1; r < size; r++) {
        double v = value(dtype, r, i);
        switch (op) {
        case NB_REDUCE_SUM: case NB_REDUCE_AVG: acc += v; break;
        case NB_REDUCE_MAX: acc = std::max(acc, v); break;
        case NB_REDUCE_MIN: acc = std::min(acc, v); break;
        default: acc *= v;
        }
    }
    if (dtype == NB_BOOL) return acc != 0; // or for sum and max, and for min and prod: the same on 0/1
    return op == NB_REDUCE_AVG ? acc / size : acc;
}

std::string what(const char *name, nb_dtype dtype, nb_reduce_op op = NB_REDUCE_SUM) {
    return std::string(name) + " " + nb_dtype_name(dtype) + " " + nb_reduce_op_name(op) + " rank " +
           std::to_string(g_rank);
}

TEST(Dist, RankAndSize) {
    EXPECT_EQ(nb_dist_rank(g_comm), g_rank);
    EXPECT_GE(g_size, 1);
    EXPECT_GE(nb_dist_local_rank(g_comm), 0);
    EXPECT_LT(nb_dist_local_rank(g_comm), g_size);
    EXPECT_EQ(nb_dist_rank(nullptr), -1);
    EXPECT_EQ(nb_dist_world_size(nullptr), 0);
}

TEST(Dist, AllReduceEveryDtypeAndOp) {
    const Shape shape = {3, 37};
    for (nb_dtype dtype : EVERY)
        for (nb_reduce_op op : {NB_REDUCE_SUM, NB_REDUCE_AVG, NB_REDUCE_MAX, NB_REDUCE_MIN, NB_REDUCE_PROD}) {
            if (op == NB_REDUCE_AVG && !nb_dtype_is_float(dtype)) continue;
            for (bool in_place : {false, true}) {
                T in(rank_tensor(dtype, g_rank, shape));
                T out(in_place ? nb_retain(in) : nb_zeros(2, shape.data(), dtype, nb_cpu()));
                ASSERT_EQ(nb_dist_all_reduce(g_comm, in, out, op, nullptr), NB_OK) << nb_last_error();
                Host want(shape);
                for (int64_t i = 0; i < want.numel(); i++) want.v[i] = fold(op, dtype, i, g_size);
                expect_close(read_tensor(out), want, dtype, 1, what("all_reduce", dtype, op));
            }
        }
}

TEST(Dist, AsynchronousHandles) {
    const Shape shape = {1000};
    T a(rank_tensor(NB_F32, g_rank, shape)), b(rank_tensor(NB_I64, g_rank, shape));
    T sum_a(nb_zeros(1, shape.data(), NB_F32, nb_cpu()));
    nb_dist_work *first = nullptr, *second = nullptr;
    ASSERT_EQ(nb_dist_all_reduce(g_comm, a, sum_a, NB_REDUCE_SUM, &first), NB_OK) << nb_last_error();
    ASSERT_EQ(nb_dist_all_reduce(g_comm, b, b, NB_REDUCE_MAX, &second), NB_OK) << nb_last_error();
    bool done = false;
    for (int spins = 0; !done && spins < 100000; spins++) {
        ASSERT_EQ(nb_dist_test(second, &done), NB_OK) << nb_last_error();
        if (!done) usleep(100);
    }
    EXPECT_TRUE(done);
    ASSERT_EQ(nb_dist_wait(first), NB_OK) << nb_last_error(); // done before second: queued first
    ASSERT_EQ(nb_dist_wait(first), NB_OK);                      // a second wait returns the same
    Host want_a(shape), want_b(shape);
    for (int64_t i = 0; i < 1000; i++) {
        want_a.v[i] = fold(NB_REDUCE_SUM, NB_F32, i, g_size);
        want_b.v[i] = fold(NB_REDUCE_MAX, NB_I64, i, g_size);
    }
    expect_close(read_tensor(sum_a), want_a, NB_F32, 1, "async sum");
    expect_close(read_tensor(b), want_b, NB_I64, 1, "async max in place");
    nb_dist_work_free(first);
    nb_dist_work_free(second);
    nb_dist_work_free(nullptr);
    // a handle freed without a wait waits first
    nb_dist_work *unwaited = nullptr;
    ASSERT_EQ(nb_dist_all_reduce(g_comm, a, a, NB_REDUCE_SUM, &unwaited), NB_OK);
    nb_dist_work_free(unwaited);
    expect_close(read_tensor(a), want_a, NB_F32, 1, "freed before waiting");
}

TEST(Dist, BroadcastFromEveryRoot) {
    for (nb_dtype dtype : EVERY)
        for (int root = 0; root < g_size; root++) {
            T t(rank_tensor(dtype, g_rank, {5, 3}));
            ASSERT_EQ(nb_dist_broadcast(g_comm, t, root, nullptr), NB_OK) << nb_last_error();
            Host want({5, 3});
            for (int64_t i = 0; i < 15; i++) want.v[i] = value(dtype, root, i);
            expect_close(read_tensor(t), want, dtype, 1, what("broadcast", dtype) + " root " + std::to_string(root));
        }
}

TEST(Dist, AllGatherAndReduceScatter) {
    for (nb_dtype dtype : EVERY) {
        const Shape part = {4, 3};
        Shape whole = {4 * g_size, 3};
        T in(rank_tensor(dtype, g_rank, part));
        T gathered(nb_zeros(2, whole.data(), dtype, nb_cpu()));
        ASSERT_EQ(nb_dist_all_gather(g_comm, in, gathered, nullptr), NB_OK) << nb_last_error();
        Host want(whole);
        for (int r = 0; r < g_size; r++)
            for (int64_t i = 0; i < 12; i++) want.v[r * 12 + i] = value(dtype, r, i);
        expect_close(read_tensor(gathered), want, dtype, 1, what("all_gather", dtype));
        for (nb_reduce_op op : {NB_REDUCE_SUM, NB_REDUCE_AVG, NB_REDUCE_MAX}) {
            if (op == NB_REDUCE_AVG && !nb_dtype_is_float(dtype)) continue;
            T big(rank_tensor(dtype, g_rank, whole));
            T mine(nb_zeros(2, part.data(), dtype, nb_cpu()));
            ASSERT_EQ(nb_dist_reduce_scatter(g_comm, big, mine, op, nullptr), NB_OK) << nb_last_error();
            Host slice(part);
            for (int64_t i = 0; i < 12; i++) slice.v[i] = fold(op, dtype, g_rank * 12 + i, g_size);
            expect_close(read_tensor(mine), slice, dtype, 1, what("reduce_scatter", dtype, op));
        }
    }
}

TEST(Dist, StridedInputsAndEmptyTensors) {
    T base(rank_tensor(NB_F64, g_rank, {6, 4}));
    T strided(nb_transpose(base, 0, 1)); // read through a contiguous copy
    T out(nb_zeros(2, Shape{4, 6}.data(), NB_F64, nb_cpu()));
    ASSERT_EQ(nb_dist_all_reduce(g_comm, strided, out, NB_REDUCE_SUM, nullptr), NB_OK) << nb_last_error();
    Host got = read_tensor(out);
    for (int64_t i = 0; i < 6; i++)
        for (int64_t j = 0; j < 4; j++) EXPECT_EQ(got.v[j * 6 + i], fold(NB_REDUCE_SUM, NB_F64, i * 4 + j, g_size));
    T empty(nb_zeros(2, Shape{0, 3}.data(), NB_F32, nb_cpu()));
    EXPECT_EQ(nb_dist_all_reduce(g_comm, empty, empty, NB_REDUCE_SUM, nullptr), NB_OK) << nb_last_error();
    EXPECT_EQ(nb_dist_barrier(g_comm), NB_OK) << nb_last_error();
}

// Bad input on every rank: a status naming the function and the rank, and
// the communicator still works.
TEST(Dist, BadInputOnEveryRank) {
    T x(rank_tensor(NB_F32, g_rank, {4}));
    T i32(rank_tensor(NB_I32, g_rank, {4}));
    T other(nb_zeros(1, Shape{5}.data(), NB_F32, nb_cpu()));
    T wide(nb_zeros(2, Shape{4, 2}.data(), NB_F32, nb_cpu()));
    T strided_out(nb_transpose(wide, 0, 1));
    nb_dist_work *work = (nb_dist_work *)&work;
    EXPECT_EQ(nb_dist_all_reduce(nullptr, x, x, NB_REDUCE_SUM, &work), NB_ERR_INVALID);
    EXPECT_EQ(work, nullptr);
    EXPECT_NE(strstr(nb_last_error(), "nb_dist_all_reduce: comm is NULL"), nullptr) << nb_last_error();
    EXPECT_EQ(nb_dist_all_reduce(g_comm, nullptr, x, NB_REDUCE_SUM, nullptr), NB_ERR_INVALID);
    EXPECT_EQ(nb_dist_all_reduce(g_comm, x, other, NB_REDUCE_SUM, nullptr), NB_ERR_SHAPE);
    EXPECT_NE(strstr(nb_last_error(), "out is [5] but in is [4]"), nullptr) << nb_last_error();
    EXPECT_EQ(nb_dist_all_reduce(g_comm, x, i32, NB_REDUCE_SUM, nullptr), NB_ERR_DTYPE);
    EXPECT_EQ(nb_dist_all_reduce(g_comm, i32, i32, NB_REDUCE_AVG, nullptr), NB_ERR_DTYPE);
    EXPECT_NE(strstr(nb_last_error(), "avg needs a float tensor, got i32"), nullptr) << nb_last_error();
    EXPECT_EQ(nb_dist_all_reduce(g_comm, x, x, (nb_reduce_op)9, nullptr), NB_ERR_INVALID);
    EXPECT_EQ(nb_dist_all_reduce(g_comm, strided_out, strided_out, NB_REDUCE_SUM, nullptr), NB_ERR_INVALID);
    EXPECT_EQ(nb_dist_broadcast(g_comm, x, g_size, nullptr), NB_ERR_INDEX);
    EXPECT_EQ(nb_dist_broadcast(g_comm, x, -1, nullptr), NB_ERR_INDEX);
    EXPECT_EQ(nb_dist_all_gather(g_comm, x, x, nullptr), NB_ERR_SHAPE);
    EXPECT_EQ(nb_dist_reduce_scatter(g_comm, x, other, NB_REDUCE_SUM, nullptr), NB_ERR_SHAPE);
    EXPECT_EQ(nb_dist_wait(nullptr), NB_ERR_INVALID);
    bool done;
    EXPECT_EQ(nb_dist_test(nullptr, &done), NB_ERR_INVALID);
    EXPECT_EQ(nb_dist_barrier(nullptr), NB_ERR_INVALID);
    EXPECT_EQ(nb_dist_init(nullptr, nullptr), NB_ERR_INVALID);
    nb_comm *bad = (nb_comm *)&bad;
    nb_comm_options negative = {};
    negative.timeout = -1;
    EXPECT_EQ(nb_dist_init(&negative, &bad), NB_ERR_INVALID);
    EXPECT_EQ(bad, nullptr);
    if (nb_cuda_device_count() > 0) { // in and out on different devices
        T on_gpu(nb_to(x, nb_cuda(0)));
        EXPECT_EQ(nb_dist_all_reduce(g_comm, x, on_gpu, NB_REDUCE_SUM, nullptr), NB_ERR_DEVICE);
    }
    ASSERT_EQ(nb_dist_all_reduce(g_comm, x, x, NB_REDUCE_SUM, nullptr), NB_OK) << nb_last_error();
}

// Ranks that call collectives that do not match: every rank gets NB_ERR_DIST
// naming what it called and what another rank did, and the communicator
// still works (the check runs before any data moves).
TEST(Dist, RanksThatDisagreeAreErrors) {
    T x(rank_tensor(NB_F32, g_rank, {g_rank == 1 ? 5 : 4}));
    EXPECT_EQ(nb_dist_all_reduce(g_comm, x, x, NB_REDUCE_SUM, nullptr), NB_ERR_DIST);
    EXPECT_NE(strstr(nb_last_error(), "the ranks disagree"), nullptr) << nb_last_error();
    EXPECT_NE(strstr(nb_last_error(), g_rank == 1 ? "all_reduce of 5 f32" : "all_reduce of 4 f32"), nullptr)
        << nb_last_error();
    T y(rank_tensor(g_rank == 0 ? NB_F64 : NB_F32, g_rank, {4}));
    EXPECT_EQ(nb_dist_all_reduce(g_comm, y, y, NB_REDUCE_SUM, nullptr), NB_ERR_DIST);
    EXPECT_NE(strstr(nb_last_error(), "f64"), nullptr) << nb_last_error();
    T z(rank_tensor(NB_F32, g_rank, {4}));
    EXPECT_EQ(nb_dist_all_reduce(g_comm, z, z, g_rank == 0 ? NB_REDUCE_MAX : NB_REDUCE_SUM, nullptr), NB_ERR_DIST);
    EXPECT_EQ(nb_dist_broadcast(g_comm, z, g_rank == 0 ? 1 : 0, nullptr), NB_ERR_DIST);
    nb_status mixed = g_rank == 0 ? nb_dist_broadcast(g_comm, z, 0, nullptr)
                                  : nb_dist_all_reduce(g_comm, z, z, NB_REDUCE_SUM, nullptr);
    EXPECT_EQ(mixed, NB_ERR_DIST);
    ASSERT_EQ(nb_dist_all_reduce(g_comm, z, z, NB_REDUCE_SUM, nullptr), NB_OK) << nb_last_error();
    Host want({4});
    for (int64_t i = 0; i < 4; i++) want.v[i] = fold(NB_REDUCE_SUM, NB_F32, i, g_size);
    expect_close(read_tensor(z), want, NB_F32, 1, "after the mismatches");
}

// Large enough for MPI's segmented algorithms; values that sum exactly.
TEST(Dist, LargeAllReduce) {
    const int64_t n = 3 << 20;
    T x(nb_full(1, &n, (double)(g_rank + 1), NB_F32, nb_cpu()));
    ASSERT_EQ(nb_dist_all_reduce(g_comm, x, x, NB_REDUCE_SUM, nullptr), NB_OK) << nb_last_error();
    T total(nb_sum(x, 0, nullptr, false));
    double got = 0;
    ASSERT_EQ(nb_item(total, &got), NB_OK);
    EXPECT_EQ(got, (double)n * g_size * (g_size + 1) / 2);
}

// ---- data parallelism ----

// 6 -> 8 -> 3 with SiLU, and a fourth child the loss never uses.
struct Net {
    nb_module *all = nullptr;
    nb_module *l1 = nullptr, *act = nullptr, *l2 = nullptr;
    Net(uint64_t seed, nb_dtype dtype) {
        nb_generator *gen = nb_generator_create(seed);
        l1 = nb_nn_linear(6, 8, true, dtype, nb_cpu(), gen);
        act = nb_nn_activation(NB_ACT_SILU);
        l2 = nb_nn_linear(8, 3, true, dtype, nb_cpu(), gen);
        nb_module *unused = nb_nn_linear(3, 2, true, dtype, nb_cpu(), gen);
        nb_module *children[4] = {l1, act, l2, unused};
        all = nb_nn_sequential(4, children);
        nb_generator_free(gen);
    }
    ~Net() { nb_module_free(all); }
    std::vector<nb_tensor *> params() const {
        std::vector<nb_named_tensor> named(nb_module_parameters(all, nullptr, 0));
        nb_module_parameters(all, named.data(), (int)named.size());
        std::vector<nb_tensor *> out;
        for (const nb_named_tensor &n : named) out.push_back(n.tensor);
        return out;
    }
    // mean((l2(silu(l1(x))) - t)^2)
    nb_tensor *loss(const nb_tensor *x, const nb_tensor *t) const {
        T h(nb_module_forward(l1, x)), a(nb_module_forward(act, h)), y(nb_module_forward(l2, a));
        T d(nb_sub(y, t)), sq(nb_mul(d, d));
        return nb_mean(sq, 0, nullptr, false);
    }
};

nb_tensor *rows(const nb_tensor *t, int64_t from, int64_t count) { return nb_slice(t, 0, from, from + count, 1); }

// max |a - b| / max(|b|, 0.01) over every element.
double max_relative_difference(const std::vector<nb_tensor *> &a, const std::vector<nb_tensor *> &b) {
    double worst = 0;
    for (size_t i = 0; i < a.size(); i++) {
        Host x = read_tensor(a[i]), y = read_tensor(b[i]);
        for (int64_t k = 0; k < x.numel(); k++)
            worst = std::max(worst, std::fabs(x.v[k] - y.v[k]) / std::max(1e-2, std::fabs(y.v[k])));
    }
    return worst;
}

// DDP training on each rank's shard of 4 rows against one process training
// on the whole global batch (rank 0's initial parameters, which DDP
// broadcasts): SGD with momentum for 5 steps, with a bucket per parameter
// (smaller than any gradient) and one bucket for all. The unused child
// averages zeros and stays as it started in both.
TEST(Ddp, EqualsSingleProcessTrainingOnTheGlobalBatch) {
    const int64_t local = 4, steps = 5, global = local * g_size;
    for (nb_dtype dtype : {NB_F64, NB_F32})
        for (double bucket_mib : {1e-9, 25.0}) {
            nb_generator *gen = nb_generator_create(5);
            T x(nb_normal(2, Shape{global * steps, 6}.data(), 0, 1, dtype, nb_cpu(), gen));
            T t(nb_normal(2, Shape{global * steps, 3}.data(), 0, 1, dtype, nb_cpu(), gen));
            nb_generator_free(gen);
            Net mine(100 + g_rank, dtype), single(100, dtype);
            nb_ddp_options options = {};
            options.bucket_mib = bucket_mib;
            nb_ddp *ddp = nullptr;
            ASSERT_EQ(nb_ddp_create(mine.all, g_comm, &options, &ddp), NB_OK) << nb_last_error();
            EXPECT_EQ(nb_ddp_bucket_count(ddp), bucket_mib < 1 ? 6 : 1);
            std::vector<nb_tensor *> p = mine.params(), q = single.params();
            EXPECT_EQ(max_relative_difference(p, q), 0) << "broadcast from rank 0";
            nb_optimizer *opt = nb_sgd_create(p.data(), (int)p.size(), 0.1, 0.9, 0, false);
            nb_optimizer *ref = nb_sgd_create(q.data(), (int)q.size(), 0.1, 0.9, 0, false);
            for (int64_t s = 0; s < steps; s++) {
                nb_optimizer_zero_grad(opt);
                nb_optimizer_zero_grad(ref);
                T xs(rows(x, s * global + g_rank * local, local)), ts(rows(t, s * global + g_rank * local, local));
                T loss(mine.loss(xs, ts));
                if (s % 2) { // backward and finish, or both in one call
                    ASSERT_EQ(nb_backward(loss, nullptr, false), NB_OK) << nb_last_error();
                    ASSERT_EQ(nb_ddp_finish(ddp), NB_OK) << nb_last_error();
                } else {
                    ASSERT_EQ(nb_ddp_backward(ddp, loss, nullptr), NB_OK) << nb_last_error();
                }
                ASSERT_EQ(nb_optimizer_step(opt), NB_OK) << nb_last_error();
                T xg(rows(x, s * global, global)), tg(rows(t, s * global, global));
                T ref_loss(single.loss(xg, tg));
                ASSERT_EQ(nb_backward(ref_loss, nullptr, false), NB_OK);
                ASSERT_EQ(nb_optimizer_step(ref), NB_OK);
            }
            double diff = max_relative_difference(p, q), limit = dtype == NB_F64 ? 1e-10 : 2e-5;
            EXPECT_LT(diff, limit) << nb_dtype_name(dtype) << " bucket_mib " << bucket_mib;
            if (g_rank == 0)
                printf("[ ddp      ] %d ranks %s bucket_mib %g: max relative parameter difference %.2e\n", g_size,
                       nb_dtype_name(dtype), bucket_mib, diff);
            std::vector<nb_ddp_timing> timings(nb_ddp_bucket_count(ddp));
            for (int k = 0; k < nb_ddp_bucket_count(ddp); k++) {
                ASSERT_EQ(nb_ddp_bucket_timing(ddp, k, &timings[k]), NB_OK);
                EXPECT_LE(timings[k].ready, timings[k].started + 1e-9);
                EXPECT_LE(timings[k].started, timings[k].done + 1e-9);
                EXPECT_GT(timings[k].bytes, 0);
            }
            // the last step ran nb_ddp_backward's way: with a bucket per
            // parameter the first (the unused child's) started before
            // backward, and the third (l2's bias) before the last used
            // gradient (l1's weight, bucket 5) was ready
            if (timings.size() == 6) {
                EXPECT_LT(timings[2].started, timings[5].ready);
            }
            nb_optimizer_free(opt);
            nb_optimizer_free(ref);
            nb_ddp_free(ddp);
        }
}

// Gradients accumulated over two micro-batches, the first without sync:
// the average over the ranks of the sums, as one process backing through
// both global micro-batches.
TEST(Ddp, NoSyncAccumulates) {
    const int64_t local = 2, global = local * g_size;
    nb_generator *gen = nb_generator_create(9);
    T x(nb_normal(2, Shape{2 * global, 6}.data(), 0, 1, NB_F64, nb_cpu(), gen));
    T t(nb_normal(2, Shape{2 * global, 3}.data(), 0, 1, NB_F64, nb_cpu(), gen));
    nb_generator_free(gen);
    Net mine(7, NB_F64), single(7, NB_F64);
    nb_ddp *ddp = nullptr;
    ASSERT_EQ(nb_ddp_create(mine.all, g_comm, nullptr, &ddp), NB_OK) << nb_last_error();
    for (int micro = 0; micro < 2; micro++) {
        nb_ddp_set_sync(ddp, micro == 1);
        T xs(rows(x, micro * global + g_rank * local, local)), ts(rows(t, micro * global + g_rank * local, local));
        T loss(mine.loss(xs, ts));
        ASSERT_EQ(nb_backward(loss, nullptr, false), NB_OK) << nb_last_error();
        ASSERT_EQ(nb_ddp_finish(ddp), NB_OK) << nb_last_error(); // nothing to do without sync
        T xg(rows(x, micro * global, global)), tg(rows(t, micro * global, global));
        T ref(single.loss(xg, tg));
        ASSERT_EQ(nb_backward(ref, nullptr, false), NB_OK);
    }
    std::vector<nb_tensor *> p = mine.params(), q = single.params();
    for (size_t i = 0; i < 4; i++) { // the used children's gradients
        T a(nb_grad(p[i])), b(nb_grad(q[i]));
        ASSERT_NE(a.t, nullptr);
        expect_close(read_tensor(a), read_tensor(b), NB_F64, 1, "no_sync gradient " + std::to_string(i));
    }
    nb_ddp_free(ddp);
}

TEST(Ddp, UnusedParametersAreAnErrorOnRequest) {
    Net mine(3, NB_F32);
    nb_ddp_options options = {};
    options.error_on_unused = true;
    nb_ddp *ddp = nullptr;
    ASSERT_EQ(nb_ddp_create(mine.all, g_comm, &options, &ddp), NB_OK) << nb_last_error();
    T x(nb_ones(2, Shape{2, 6}.data(), NB_F32, nb_cpu())), t(nb_zeros(2, Shape{2, 3}.data(), NB_F32, nb_cpu()));
    T loss(mine.loss(x, t));
    ASSERT_EQ(nb_backward(loss, nullptr, false), NB_OK);
    EXPECT_EQ(nb_ddp_finish(ddp), NB_ERR_AUTOGRAD);
    EXPECT_NE(strstr(nb_last_error(), "2 parameters got no gradient in this backward (3.weight, 3.bias)"), nullptr)
        << nb_last_error();
    // the ranks stay in step: the next collective still matches
    EXPECT_EQ(nb_dist_barrier(g_comm), NB_OK) << nb_last_error();
    nb_ddp_free(ddp);
    nb_ddp *none = (nb_ddp *)&none;
    EXPECT_EQ(nb_ddp_create(nullptr, g_comm, nullptr, &none), NB_ERR_INVALID);
    EXPECT_EQ(none, nullptr);
    options.bucket_mib = -1;
    EXPECT_EQ(nb_ddp_create(mine.all, g_comm, &options, &none), NB_ERR_INVALID);
    EXPECT_EQ(nb_ddp_finish(nullptr), NB_ERR_INVALID);
}

// The DDP of a front end's parameter list trains exactly as the module's:
// the same broadcast, buckets and averages, bit for bit.
TEST(Ddp, FromTensorsEqualsFromTheModule) {
    const int64_t local = 3, global = local * g_size;
    nb_generator *gen = nb_generator_create(11);
    T x(nb_normal(2, Shape{2 * global, 6}.data(), 0, 1, NB_F64, nb_cpu(), gen));
    T t(nb_normal(2, Shape{2 * global, 3}.data(), 0, 1, NB_F64, nb_cpu(), gen));
    nb_generator_free(gen);
    Net by_module(20 + g_rank, NB_F64), by_list(20 + g_rank, NB_F64);
    std::vector<nb_named_tensor> named(nb_module_parameters(by_list.all, nullptr, 0));
    nb_module_parameters(by_list.all, named.data(), (int)named.size());
    nb_ddp_options options = {};
    options.bucket_mib = 1e-9;
    nb_ddp *a = nullptr, *b = nullptr;
    ASSERT_EQ(nb_ddp_create(by_module.all, g_comm, &options, &a), NB_OK) << nb_last_error();
    ASSERT_EQ(nb_ddp_create_from_tensors(named.data(), (int)named.size(), nullptr, 0, g_comm, &options, &b), NB_OK)
        << nb_last_error();
    EXPECT_EQ(nb_ddp_bucket_count(b), nb_ddp_bucket_count(a));
    std::vector<nb_tensor *> p = by_module.params(), q = by_list.params();
    nb_optimizer *opt_a = nb_sgd_create(p.data(), (int)p.size(), 0.1, 0.9, 0, false);
    nb_optimizer *opt_b = nb_sgd_create(q.data(), (int)q.size(), 0.1, 0.9, 0, false);
    for (int64_t s = 0; s < 2; s++) {
        T xs(rows(x, s * global + g_rank * local, local)), ts(rows(t, s * global + g_rank * local, local));
        T la(by_module.loss(xs, ts)), lb(by_list.loss(xs, ts));
        ASSERT_EQ(nb_ddp_backward(a, la, nullptr), NB_OK) << nb_last_error();
        ASSERT_EQ(nb_ddp_backward(b, lb, nullptr), NB_OK) << nb_last_error();
        ASSERT_EQ(nb_optimizer_step(opt_a), NB_OK);
        ASSERT_EQ(nb_optimizer_step(opt_b), NB_OK);
        nb_optimizer_zero_grad(opt_a);
        nb_optimizer_zero_grad(opt_b);
    }
    EXPECT_EQ(max_relative_difference(q, p), 0);
    // bad lists fail on every rank alike, before any collective
    nb_ddp *none = nullptr;
    std::vector<nb_named_tensor> twice = {named[0], named[0]};
    EXPECT_EQ(nb_ddp_create_from_tensors(twice.data(), 2, nullptr, 0, g_comm, nullptr, &none), NB_ERR_INVALID);
    EXPECT_NE(strstr(nb_last_error(), "parameters 0 and 1 are the same tensor"), nullptr) << nb_last_error();
    T made(nb_mul(named[0].tensor, named[0].tensor));
    nb_named_tensor product = {"product", made};
    EXPECT_EQ(nb_ddp_create_from_tensors(&product, 1, nullptr, 0, g_comm, nullptr, &none), NB_ERR_INVALID);
    EXPECT_NE(strstr(nb_last_error(), "parameter product must be a float leaf"), nullptr) << nb_last_error();
    EXPECT_EQ(none, nullptr);
    nb_optimizer_free(opt_a);
    nb_optimizer_free(opt_b);
    nb_ddp_free(a);
    nb_ddp_free(b);
}

// ---- SyncBatchNorm ----

// Each rank's part of a global batch against BatchNorm of the whole batch:
// the output rows and the running statistics equal, and the ranks' weight
// and bias gradients add up to the whole batch's. Uneven parts, one of
// them empty.
TEST(SyncBatchNorm, EqualsBatchNormOnTheConcatenatedBatch) {
    for (nb_dtype dtype : {NB_F64, NB_F32})
        for (bool with_empty : {true, false}) {
            std::vector<int64_t> sizes, starts;
            int64_t total = 0;
            for (int r = 0; r < g_size; r++) {
                sizes.push_back(with_empty && r == 1 ? 0 : r + 2);
                starts.push_back(total);
                total += sizes.back();
            }
            const int64_t channels = 3;
            nb_generator *gen = nb_generator_create(21);
            T x(nb_normal(4, Shape{total, channels, 4, 5}.data(), 1.5, 2, dtype, nb_cpu(), gen));
            T grad(nb_normal(4, Shape{total, channels, 4, 5}.data(), 0, 1, dtype, nb_cpu(), gen));
            T w0(nb_normal(1, &channels, 1, 0.3, dtype, nb_cpu(), gen)), b0(nb_normal(1, &channels, 0, 0.3, dtype, nb_cpu(), gen));
            nb_generator_free(gen);
            std::string tag = std::string(nb_dtype_name(dtype)) + (with_empty ? " with an empty rank" : " uneven");
            nb_module *ref = nb_nn_batch_norm2d(channels, 1e-5, 0.1, true, dtype, nb_cpu());
            nb_module *mine = nb_nn_sync_batch_norm2d(channels, 1e-5, 0.1, true, dtype, nb_cpu(), g_comm);
            ASSERT_NE(mine, nullptr) << nb_last_error();
            EXPECT_STREQ(nb_module_type(mine), "SyncBatchNorm");
            nb_named_tensor pr[2], pm[2], br[2], bm[2];
            ASSERT_EQ(nb_module_parameters(ref, pr, 2), 2);
            ASSERT_EQ(nb_module_parameters(mine, pm, 2), 2);
            nb_module_buffers(ref, br, 2);
            nb_module_buffers(mine, bm, 2);
            bool was = nb_set_grad_enabled(false);
            for (int i = 0; i < 2; i++) {
                ASSERT_EQ(nb_copy_(pr[i].tensor, i ? b0 : w0), NB_OK) << nb_last_error();
                ASSERT_EQ(nb_copy_(pm[i].tensor, i ? b0 : w0), NB_OK) << nb_last_error();
            }
            nb_set_grad_enabled(was);
            T y_ref(nb_module_forward(ref, x));
            ASSERT_EQ(nb_backward(y_ref, grad, false), NB_OK) << nb_last_error();
            T xs(rows(x, starts[g_rank], sizes[g_rank])), gs(rows(grad, starts[g_rank], sizes[g_rank]));
            T y(nb_module_forward(mine, xs));
            ASSERT_NE(y.t, nullptr) << nb_last_error();
            ASSERT_EQ(nb_backward(y, gs, false), NB_OK) << nb_last_error();
            const double scale = dtype == NB_F64 ? 1 : 3;
            if (sizes[g_rank] > 0) {
                T want(rows(y_ref, starts[g_rank], sizes[g_rank]));
                expect_close(read_tensor(y), read_tensor(want), dtype, scale, tag + " forward");
            }
            for (int i = 0; i < 2; i++) // running mean and variance
                expect_close(read_tensor(bm[i].tensor), read_tensor(br[i].tensor), dtype, scale,
                             tag + " " + bm[i].name);
            for (int i = 0; i < 2; i++) { // the ranks' parameter gradients sum to the whole batch's
                T local(nb_grad(pm[i].tensor)), want(nb_grad(pr[i].tensor));
                ASSERT_NE(local.t, nullptr) << pm[i].name;
                T summed(nb_clone(local));
                ASSERT_EQ(nb_dist_all_reduce(g_comm, summed, summed, NB_REDUCE_SUM, nullptr), NB_OK);
                expect_close(read_tensor(summed), read_tensor(want), dtype, scale, tag + " d" + pm[i].name);
            }
            if (g_rank == 0) printf("[ syncbn   ] %d ranks %s: forward, running statistics and gradients match\n", g_size, tag.c_str());
            nb_module_free(ref);
            nb_module_free(mine);
        }
}

// The input gradient against BatchNorm's through the whole batch, a model
// converted by nb_nn_convert_sync_batch_norm, and evaluation (no
// communication).
TEST(SyncBatchNorm, InputGradientConversionAndEvaluation) {
    const int64_t channels = 2, local = 3, total = local * g_size;
    nb_generator *gen = nb_generator_create(4);
    T x(nb_normal(3, Shape{total, channels, 7}.data(), -1, 3, NB_F64, nb_cpu(), gen));
    T grad(nb_normal(3, Shape{total, channels, 7}.data(), 0, 1, NB_F64, nb_cpu(), gen));
    nb_generator_free(gen);
    T whole(nb_detach(x));
    ASSERT_EQ(nb_set_requires_grad(whole, true), NB_OK);
    nb_module *ref = nb_nn_batch_norm1d(channels, 1e-5, 0.1, false, NB_F64, nb_cpu());
    nb_module *mine = nb_nn_batch_norm1d(channels, 1e-5, 0.1, false, NB_F64, nb_cpu());
    nb_module *seq = nb_nn_sequential(1, &mine);
    EXPECT_EQ(nb_nn_convert_sync_batch_norm(seq, g_comm), 1);
    EXPECT_EQ(nb_nn_convert_sync_batch_norm(seq, g_comm), 0) << "already converted";
    EXPECT_EQ(nb_nn_convert_sync_batch_norm(nullptr, g_comm), -1);
    T y_ref(nb_module_forward(ref, whole));
    ASSERT_EQ(nb_backward(y_ref, grad, false), NB_OK);
    T part(nb_contiguous(T(rows(x, g_rank * local, local))));
    ASSERT_EQ(nb_set_requires_grad(part, true), NB_OK);
    T y(nb_module_forward(seq, part));
    ASSERT_NE(y.t, nullptr) << nb_last_error();
    ASSERT_EQ(nb_backward(y, T(rows(grad, g_rank * local, local)), false), NB_OK) << nb_last_error();
    T dx(nb_grad(part)), dx_all(nb_grad(whole));
    T dx_ref(rows(dx_all, g_rank * local, local));
    expect_close(read_tensor(dx), read_tensor(dx_ref), NB_F64, 1, "SyncBatchNorm input gradient");
    nb_module_train(seq, false);
    nb_module_train(ref, false);
    T e(nb_module_forward(seq, part)), e_ref(nb_module_forward(ref, part));
    expect_close(read_tensor(e), read_tensor(e_ref), NB_F64, 1, "evaluation");
    nb_module_free(ref);
    nb_module_free(seq);
    EXPECT_EQ(nb_nn_sync_batch_norm2d(3, 1e-5, 0.1, true, NB_F32, nb_cpu(), nullptr), nullptr);
    EXPECT_EQ(nb_sync_batch_norm(part, nullptr, nullptr, nullptr, nullptr, true, 0.1, 1e-5, nullptr), nullptr);
}

// ---- NCCL: CUDA tensors ----

// Every collective on CUDA tensors in every dtype against the values each
// rank computes, through a handle and waited for. Needs a GPU per rank
// (ctest's dist_nccl_1_rank runs it on one); skipped otherwise, saying why.
TEST(Nccl, CollectivesOnCudaTensors) {
    int devices = nb_cuda_device_count();
    if (devices == 0) GTEST_SKIP() << "no CUDA device";
    if (devices < g_size) GTEST_SKIP() << "NCCL needs a GPU per rank: " << devices << " for " << g_size << " ranks";
    nb_device gpu = nb_cuda(nb_dist_local_rank(g_comm) % devices);
    auto on = [&](nb_tensor *t) { return T(nb_to(T(t), gpu)); };
    auto back = [](const nb_tensor *t) { return read_tensor(T(nb_to(t, nb_cpu()))); };
    for (nb_dtype dtype : EVERY) {
        for (nb_reduce_op op : {NB_REDUCE_SUM, NB_REDUCE_AVG, NB_REDUCE_MAX, NB_REDUCE_MIN, NB_REDUCE_PROD}) {
            if (op == NB_REDUCE_AVG && !nb_dtype_is_float(dtype)) continue;
            T x(on(rank_tensor(dtype, g_rank, {3, 37})));
            nb_dist_work *work = nullptr;
            ASSERT_EQ(nb_dist_all_reduce(g_comm, x, x, op, &work), NB_OK) << nb_last_error();
            ASSERT_EQ(nb_dist_wait(work), NB_OK) << nb_last_error();
            nb_dist_work_free(work);
            Host want({3, 37});
            for (int64_t i = 0; i < want.numel(); i++) want.v[i] = fold(op, dtype, i, g_size);
            expect_close(back(x), want, dtype, 1, what("nccl all_reduce", dtype, op));
        }
        T t(on(rank_tensor(dtype, g_rank, {5})));
        ASSERT_EQ(nb_dist_broadcast(g_comm, t, 0, nullptr), NB_OK) << nb_last_error();
        Host root({5});
        for (int64_t i = 0; i < 5; i++) root.v[i] = value(dtype, 0, i);
        expect_close(back(t), root, dtype, 1, what("nccl broadcast", dtype));
        T part(on(rank_tensor(dtype, g_rank, {2, 3})));
        T whole(on(nb_zeros(2, Shape{2 * g_size, 3}.data(), dtype, nb_cpu())));
        ASSERT_EQ(nb_dist_all_gather(g_comm, part, whole, nullptr), NB_OK) << nb_last_error();
        Host gathered(Shape{2 * g_size, 3});
        for (int r = 0; r < g_size; r++)
            for (int64_t i = 0; i < 6; i++) gathered.v[r * 6 + i] = value(dtype, r, i);
        expect_close(back(whole), gathered, dtype, 1, what("nccl all_gather", dtype));
    }
}

// SyncBatchNorm on CUDA (statistics merged on the device, gathered and
// reduced over NCCL) against BatchNorm on the CPU of the whole batch. Needs
// a GPU per rank and at least 2 ranks (a world of one communicates nothing).
TEST(Nccl, SyncBatchNormOnCuda) {
    int devices = nb_cuda_device_count();
    if (devices == 0) GTEST_SKIP() << "no CUDA device";
    if (g_size < 2 || devices < g_size)
        GTEST_SKIP() << "needs 2 ranks or more and a GPU per rank: " << devices << " for " << g_size << " ranks";
    nb_device gpu = nb_cuda(nb_dist_local_rank(g_comm) % devices);
    const int64_t channels = 4, local = 3, total = local * g_size;
    nb_generator *gen = nb_generator_create(8);
    T x(nb_normal(4, Shape{total, channels, 5, 5}.data(), 0.5, 2, NB_F32, nb_cpu(), gen));
    T grad(nb_normal(4, Shape{total, channels, 5, 5}.data(), 0, 1, NB_F32, nb_cpu(), gen));
    nb_generator_free(gen);
    nb_module *ref = nb_nn_batch_norm2d(channels, 1e-5, 0.1, true, NB_F32, nb_cpu());
    nb_module *mine = nb_nn_sync_batch_norm2d(channels, 1e-5, 0.1, true, NB_F32, gpu, g_comm);
    T y_ref(nb_module_forward(ref, x));
    ASSERT_EQ(nb_backward(y_ref, grad, false), NB_OK);
    T part(nb_to(T(rows(x, g_rank * local, local)), gpu)), g(nb_to(T(rows(grad, g_rank * local, local)), gpu));
    T y(nb_module_forward(mine, part));
    ASSERT_NE(y.t, nullptr) << nb_last_error();
    ASSERT_EQ(nb_backward(y, g, false), NB_OK) << nb_last_error();
    T want(rows(y_ref, g_rank * local, local));
    expect_close(read_tensor(T(nb_to(y, nb_cpu()))), read_tensor(want), NB_F32, 3, "SyncBatchNorm on CUDA");
    nb_named_tensor bm[2], br[2];
    nb_module_buffers(mine, bm, 2);
    nb_module_buffers(ref, br, 2);
    for (int i = 0; i < 2; i++)
        expect_close(read_tensor(T(nb_to(bm[i].tensor, nb_cpu()))), read_tensor(br[i].tensor), NB_F32, 3, bm[i].name);
    nb_module_free(ref);
    nb_module_free(mine);
}

// Prints a failure with the rank on ranks whose report is silenced.
class RankFailures : public ::testing::EmptyTestEventListener {
    void OnTestPartResult(const ::testing::TestPartResult &result) override {
        if (result.failed())
            fprintf(stderr, "[rank %d] %s:%d: %s\n", g_rank, result.file_name() ? result.file_name() : "?",
                    result.line_number(), result.summary());
    }
};

} // namespace

int main(int argc, char **argv) {
    ::testing::InitGoogleTest(&argc, argv);
    nb_comm_options options = {};
    options.timeout = 60;
    if (nb_dist_init(&options, &g_comm) != NB_OK) {
        fprintf(stderr, "test_dist: %s\n", nb_last_error());
        return 1;
    }
    g_rank = nb_dist_rank(g_comm);
    g_size = nb_dist_world_size(g_comm);
    if (g_rank != 0) {
        ::testing::TestEventListeners &listeners = ::testing::UnitTest::GetInstance()->listeners();
        delete listeners.Release(listeners.default_result_printer());
        listeners.Append(new RankFailures);
    }
    int failed = RUN_ALL_TESTS();
    nb_dist_free(g_comm);
    return failed;
}
