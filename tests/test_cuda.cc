// The CUDA runtime: errors without a device, memory (statistics, the cache,
// out of memory), streams and events, transfers, the RNG streams shared with
// the CPU, TF32 matmul and index errors reported at synchronization. The
// per-op checks are in test_ops.cc (CudaOpCase, CudaGradCase).
#include "harness.h"

namespace {

Host iota_host(Shape shape, double scale = 1) {
    Host h(shape);
    for (int64_t i = 0; i < h.numel(); i++) h.v[i] = std::sin((double)i) * scale;
    return h;
}

TEST(CudaWithoutDevice, EveryRequestFailsWithAReason) {
    if (nb_cuda_device_count() > 0) GTEST_SKIP() << "a GPU is present: checked by the other tests";
    EXPECT_FALSE(nb_cuda_available());
    int64_t shape[1] = {4};
    EXPECT_EQ(nb_zeros(1, shape, NB_F32, nb_cuda(0)), nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_DEVICE);
    EXPECT_NE(std::string(nb_last_error()).find("cuda:0"), std::string::npos) << nb_last_error();
    T host(nb_ones(1, shape, NB_F32, nb_cpu()));
    EXPECT_EQ(nb_to(host, nb_cuda(0)), nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_DEVICE);
    nb_stream *stream = nullptr;
    EXPECT_EQ(nb_cuda_stream_create(0, &stream), NB_ERR_DEVICE);
    nb_cuda_memory_stats stats;
    EXPECT_EQ(nb_cuda_memory_stats_get(0, &stats), NB_ERR_DEVICE);
    EXPECT_EQ(nb_cuda_synchronize(0), NB_ERR_DEVICE);
    EXPECT_EQ(nb_release_cached_memory(nb_cuda(0)), NB_ERR_DEVICE);
    EXPECT_EQ(nb_cuda_current_stream(0), nullptr);
    // the CPU is untouched
    EXPECT_EQ(read_tensor(host).v, std::vector<double>(4, 1.0));
}

TEST(Cuda, DeviceIndexOutOfRange) {
    SKIP_WITHOUT_CUDA();
    int64_t shape[1] = {4};
    EXPECT_EQ(nb_zeros(1, shape, NB_F32, nb_cuda(nb_cuda_device_count())), nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_DEVICE);
    nb_cuda_properties props;
    ASSERT_EQ(nb_cuda_get_properties(0, &props), NB_OK) << nb_last_error();
    EXPECT_GT(props.total_memory, 0u);
    EXPECT_GT(props.multiprocessors, 0);
    printf("[ cuda     ] %s, sm_%d%d, %d SMs, %.1f GiB\n", props.name, props.major, props.minor,
           props.multiprocessors, props.total_memory / 1073741824.0);
}

TEST(Cuda, TransfersRoundTripSmallAndStaged) {
    SKIP_WITHOUT_CUDA();
    for (int64_t n : {int64_t(5), int64_t(3) << 20}) { // the second goes through pinned chunks
        Host h = iota_host({n});
        T host(make_tensor(h, NB_F32));
        T device(nb_to(host, nb_cuda(0)));
        ASSERT_NE(device.t, nullptr) << nb_last_error();
        EXPECT_EQ(nb_device_of(device).type, NB_DEVICE_CUDA);
        T back(nb_to(device, nb_cpu()));
        ASSERT_NE(back.t, nullptr) << nb_last_error();
        expect_close(read_tensor(back), read_tensor(host), NB_F32, 0, "round trip");
        // copy_ across devices, into a strided CPU view
        int64_t wide[2] = {n, 2};
        T target(nb_zeros(2, wide, NB_F32, nb_cpu()));
        T column(nb_slice(target, 1, 1, 2, 1));
        T flat(nb_reshape(device, 2, Shape{n, 1}.data()));
        ASSERT_EQ(nb_copy_(column, flat), NB_OK) << nb_last_error();
        Host got = read_tensor(target);
        for (int64_t i = 0; i < n; i += n / 5 + 1) {
            EXPECT_EQ(got.v[2 * i], 0);
            EXPECT_EQ(got.v[2 * i + 1], (double)(float)h.v[i]);
        }
    }
}

TEST(Cuda, OutOfMemoryFailsCleanlyAndEverythingElseSurvives) {
    SKIP_WITHOUT_CUDA();
    nb_cuda_properties props;
    ASSERT_EQ(nb_cuda_get_properties(0, &props), NB_OK);
    Host h = iota_host({1000});
    T kept(make_tensor(h, NB_F32));
    T on_gpu(nb_to(kept, nb_cuda(0)));
    ASSERT_NE(on_gpu.t, nullptr) << nb_last_error();
    nb_cuda_memory_stats before;
    ASSERT_EQ(nb_cuda_memory_stats_get(0, &before), NB_OK);
    int64_t too_many = (int64_t)(props.total_memory / 4) * 2; // twice the GPU, in f32
    EXPECT_EQ(nb_empty(1, &too_many, NB_F32, nb_cuda(0)), nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_OOM);
    std::string message = nb_last_error();
    EXPECT_NE(message.find("nb_empty"), std::string::npos) << message;
    EXPECT_NE(message.find("out of memory"), std::string::npos) << message;
    EXPECT_NE(message.find(std::to_string(too_many * 4)), std::string::npos) << message;
    nb_cuda_memory_stats after;
    ASSERT_EQ(nb_cuda_memory_stats_get(0, &after), NB_OK);
    EXPECT_EQ(after.allocated, before.allocated);
    EXPECT_GE(after.oom_retries, before.oom_retries + 1);
    // the old tensor is intact and new work runs
    T doubled(nb_add(on_gpu, on_gpu));
    ASSERT_NE(doubled.t, nullptr) << nb_last_error();
    Host expected = h;
    for (double &v : expected.v) v = 2 * (double)(float)v;
    expect_close(read_tensor(doubled), expected, NB_F32, 1, "after OOM");
}

TEST(Cuda, AllocatorReusesBlocksAndCountsThem) {
    SKIP_WITHOUT_CUDA();
    ASSERT_EQ(nb_cuda_synchronize(0), NB_OK);
    ASSERT_EQ(nb_release_cached_memory(nb_cuda(0)), NB_OK);
    ASSERT_EQ(nb_cuda_memory_stats_reset(0), NB_OK);
    nb_cuda_memory_stats s0, s1, s2, s3;
    ASSERT_EQ(nb_cuda_memory_stats_get(0, &s0), NB_OK);
    EXPECT_EQ(s0.cached, 0u);
    int64_t n = 1 << 20; // 4 MiB of f32
    {
        T a(nb_empty(1, &n, NB_F32, nb_cuda(0)));
        ASSERT_NE(a.t, nullptr) << nb_last_error();
        ASSERT_EQ(nb_cuda_memory_stats_get(0, &s1), NB_OK);
        EXPECT_GE(s1.allocated, s0.allocated + (size_t)n * 4);
        EXPECT_EQ(s1.cuda_mallocs, s0.cuda_mallocs + 1);
    }
    ASSERT_EQ(nb_cuda_memory_stats_get(0, &s2), NB_OK);
    EXPECT_EQ(s2.allocated, s0.allocated);
    EXPECT_GE(s2.cached, (size_t)n * 4);
    EXPECT_EQ(s2.peak_allocated, s1.allocated);
    {
        T b(nb_empty(1, &n, NB_F32, nb_cuda(0)));
        ASSERT_NE(b.t, nullptr);
        ASSERT_EQ(nb_cuda_memory_stats_get(0, &s3), NB_OK);
        EXPECT_EQ(s3.cuda_mallocs, s1.cuda_mallocs) << "the freed block is reused";
    }
    ASSERT_EQ(nb_release_cached_memory(nb_cuda(0)), NB_OK);
    ASSERT_EQ(nb_cuda_memory_stats_get(0, &s3), NB_OK);
    EXPECT_EQ(s3.cached, 0u);
    EXPECT_EQ(s3.reserved, s3.allocated);
}

TEST(Cuda, StreamsAndEvents) {
    SKIP_WITHOUT_CUDA();
    nb_stream *side = nullptr;
    ASSERT_EQ(nb_cuda_stream_create(0, &side), NB_OK) << nb_last_error();
    nb_stream *original = nb_cuda_current_stream(0);
    ASSERT_NE(original, nullptr);
    nb_event *start = nullptr, *end = nullptr;
    ASSERT_EQ(nb_cuda_event_create(0, &start), NB_OK);
    ASSERT_EQ(nb_cuda_event_create(0, &end), NB_OK);
    ASSERT_EQ(nb_cuda_set_stream(0, side), NB_OK);
    EXPECT_EQ(nb_cuda_current_stream(0), side);
    Host h = iota_host({4096});
    T x(make_tensor(h, NB_F32));
    T gx(nb_to(x, nb_cuda(0)));
    ASSERT_EQ(nb_cuda_event_record(start, nullptr), NB_OK);
    T y(nb_exp(gx));
    ASSERT_EQ(nb_cuda_event_record(end, side), NB_OK);
    ASSERT_EQ(nb_cuda_stream_wait_event(original, end), NB_OK);
    ASSERT_EQ(nb_cuda_event_synchronize(end), NB_OK);
    float ms = -1;
    ASSERT_EQ(nb_cuda_event_elapsed_ms(start, end, &ms), NB_OK) << nb_last_error();
    EXPECT_GE(ms, 0);
    EXPECT_NE(nb_cuda_stream_handle(side), nullptr);
    ASSERT_EQ(nb_cuda_set_stream(0, nullptr), NB_OK);
    EXPECT_EQ(nb_cuda_current_stream(0), original);
    Host expected = h;
    for (double &v : expected.v) v = std::exp((double)(float)v);
    expect_close(read_tensor(y), expected, NB_F32, 1, "exp on a side stream");
    nb_cuda_event_destroy(start);
    nb_cuda_event_destroy(end);
    EXPECT_EQ(nb_cuda_stream_destroy(side), NB_OK);
    EXPECT_EQ(nb_cuda_stream_synchronize(original), NB_OK);
}

TEST(Cuda, RandomStreamsMatchTheCpu) {
    SKIP_WITHOUT_CUDA();
    int64_t shape[2] = {317, 331}; // odd sizes, ~100k draws
    for (nb_dtype dtype : {NB_F32, NB_F64, NB_F16, NB_BF16}) {
        auto both = [&](auto draw) {
            nb_generator *g_cpu = nb_generator_create(42), *g_gpu = nb_generator_create(42);
            T a(draw(nb_cpu(), g_cpu)), b(draw(nb_cuda(0), g_gpu));
            nb_generator_free(g_cpu);
            nb_generator_free(g_gpu);
            EXPECT_NE(a.t, nullptr) << nb_last_error();
            EXPECT_NE(b.t, nullptr) << nb_last_error();
            return std::make_pair(read_tensor(a), read_tensor(b));
        };
        auto uniform = both([&](nb_device d, nb_generator *g) { return nb_uniform(2, shape, -1, 3, dtype, d, g); });
        EXPECT_EQ(uniform.first.v, uniform.second.v) << nb_dtype_name(dtype);
        // 0.6 * u is inexact: a fused multiply-add on the GPU would differ in the last bit
        auto inexact = both([&](nb_device d, nb_generator *g) { return nb_uniform(2, shape, 0.1, 0.7, dtype, d, g); });
        EXPECT_EQ(inexact.first.v, inexact.second.v) << nb_dtype_name(dtype) << " over [0.1, 0.7)";
        auto normal = both([&](nb_device d, nb_generator *g) { return nb_normal(2, shape, 0.5, 2, dtype, d, g); });
        // Box-Muller's log and cos may differ in the last bit of a double between libm and CUDA
        expect_close(normal.second, normal.first, dtype == NB_F64 ? NB_F64 : NB_F32, 1, "normal");
        auto coin = both([&](nb_device d, nb_generator *g) { return nb_bernoulli(2, shape, 0.3, dtype, d, g); });
        EXPECT_EQ(coin.first.v, coin.second.v) << nb_dtype_name(dtype);
    }
    auto ints = [&](nb_device d) {
        nb_generator *g = nb_generator_create(7);
        T r(nb_randint(-1000, 1000, 2, shape, NB_I64, d, g));
        T p(nb_randperm(100003, NB_I32, d, g));
        nb_generator_free(g);
        return std::make_pair(read_tensor(r), read_tensor(p));
    };
    auto cpu = ints(nb_cpu()), gpu = ints(nb_cuda(0));
    EXPECT_EQ(cpu.first.v, gpu.first.v);
    EXPECT_EQ(cpu.second.v, gpu.second.v);
}

TEST(Cuda, Tf32MatmulIsOptInAndClose) {
    SKIP_WITHOUT_CUDA();
    const int64_t n = 512;
    Host a = iota_host({n, n}), b = iota_host({n, n}, 0.5);
    T ha(make_tensor(a, NB_F32)), hb(make_tensor(b, NB_F32));
    T cpu(nb_matmul(ha, hb));
    T ga(nb_to(ha, nb_cuda(0))), gb(nb_to(hb, nb_cuda(0)));
    EXPECT_FALSE(nb_cuda_tf32_enabled());
    T exact(nb_matmul(ga, gb));
    nb_cuda_set_tf32(true);
    T fast(nb_matmul(ga, gb));
    nb_cuda_set_tf32(false);
    Host ref = read_tensor(cpu), e = read_tensor(exact), f = read_tensor(fast);
    double scale = 0, err_exact = 0, err_fast = 0;
    for (int64_t i = 0; i < ref.numel(); i++) {
        scale = std::max(scale, std::fabs(ref.v[i]));
        err_exact = std::max(err_exact, std::fabs(e.v[i] - ref.v[i]));
        err_fast = std::max(err_fast, std::fabs(f.v[i] - ref.v[i]));
    }
    EXPECT_LT(err_exact, 1e-5 * scale);
    EXPECT_LT(err_fast, 3e-3 * scale); // TF32 keeps 10 mantissa bits: about 1e-3 relative
    printf("[ cuda     ] 512^3 max error / max |c|: f32 %.2e, tf32 %.2e\n", err_exact / scale,
           err_fast / scale);
}

// Odd f16/bf16 shapes with a bias at a 2-byte-aligned address and operands
// at odd offsets: cuBLASLt refuses some of these with the bias epilogue, and
// the product must still come back (without the epilogue, then on aligned
// copies), matching the CPU in float64.
TEST(Cuda, LinearWithOddShapesAndMisalignedOperands) {
    SKIP_WITHOUT_CUDA();
    for (nb_dtype dtype : {NB_F16, NB_BF16, NB_F32})
        for (int64_t features : {3, 7, 33}) {
            const int64_t rows = 5, in = 9;
            Host x = iota_host({rows, in + 1}), w = iota_host({features, in + 1}, 0.25);
            Host b = iota_host({features + 1}, 0.5);
            T hx(make_tensor(x, dtype)), hw(make_tensor(w, dtype)), hb(make_tensor(b, dtype));
            T gx(nb_to(hx, nb_cuda(0))), gw(nb_to(hw, nb_cuda(0))), gb(nb_to(hb, nb_cuda(0)));
            // views one element in: every operand off its 16-byte alignment
            T cx(nb_slice(hx, 1, 1, in + 1, 1)), cw(nb_slice(hw, 1, 1, in + 1, 1)), cb(nb_slice(hb, 0, 1, features + 1, 1));
            T vx(nb_slice(gx, 1, 1, in + 1, 1)), vw(nb_slice(gw, 1, 1, in + 1, 1)), vb(nb_slice(gb, 0, 1, features + 1, 1));
            T ref(nb_linear(T(nb_cast(cx, NB_F64)), T(nb_cast(cw, NB_F64)), T(nb_cast(cb, NB_F64))));
            T got(nb_linear(vx, vw, vb));
            ASSERT_NE(got.t, nullptr) << nb_dtype_name(dtype) << " features " << features << ": " << nb_last_error();
            expect_close(read_tensor(got), read_tensor(ref), dtype, 4,
                         std::string("linear ") + nb_dtype_name(dtype) + " features " + std::to_string(features));
        }
}

TEST(Cuda, IndexErrorsAreReportedAtTheNextSynchronization) {
    SKIP_WITHOUT_CUDA();
    Host h = iota_host({5, 3});
    T hx(make_tensor(h, NB_F32));
    T x(nb_to(hx, nb_cuda(0)));
    int64_t bad[2] = {1, 10};
    T hidx(nb_from_host(bad, 1, Shape{2}.data(), NB_I64, nb_cpu()));
    T idx(nb_to(hidx, nb_cuda(0)));
    T picked(nb_index_select(x, 0, idx)); // queued: the kernel finds the bad index
    ASSERT_NE(picked.t, nullptr) << nb_last_error();
    EXPECT_EQ(nb_cuda_synchronize(0), NB_ERR_INDEX);
    std::string message = nb_last_error();
    EXPECT_NE(message.find("index 10 out of range [0, 5)"), std::string::npos) << message;
    EXPECT_NE(message.find("nb_index_select"), std::string::npos) << message;
    EXPECT_EQ(nb_cuda_synchronize(0), NB_OK) << "reported once";
    T good(nb_exp(x));
    EXPECT_NE(good.t, nullptr);
    double v = 0;
    T first(nb_sum(good, 0, nullptr, false));
    EXPECT_EQ(nb_item(first, &v), NB_OK) << nb_last_error();
}

TEST(Cuda, MixingDevicesIsAnError) {
    SKIP_WITHOUT_CUDA();
    int64_t shape[1] = {3};
    T a(nb_ones(1, shape, NB_F32, nb_cpu()));
    T b(nb_ones(1, shape, NB_F32, nb_cuda(0)));
    EXPECT_EQ(nb_add(a, b), nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_DEVICE);
    EXPECT_NE(std::string(nb_last_error()).find("cuda:0"), std::string::npos) << nb_last_error();
    EXPECT_EQ(nb_matmul(a, b), nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_DEVICE);
}

} // namespace
