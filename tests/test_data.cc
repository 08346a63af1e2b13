// IDX reading (gzip and plain, and every way a file can be broken),
// Fashion-MNIST's loader on a small set written here, and mini-batches.
#ifdef NABLA_WITH_ZLIB
#include <zlib.h>
#endif

#include <cstdio>
#include <set>

#include "harness.h"

namespace {

std::string temp_dir() {
    char tmpl[] = "/tmp/nabla-data-XXXXXX";
    const char *dir = mkdtemp(tmpl);
    return dir ? dir : "/tmp";
}

std::vector<unsigned char> idx_bytes(const std::vector<uint32_t> &dims, const std::vector<unsigned char> &values) {
    std::vector<unsigned char> out = {0, 0, 0x08, (unsigned char)dims.size()};
    for (uint32_t d : dims)
        for (int shift = 24; shift >= 0; shift -= 8) out.push_back((unsigned char)(d >> shift));
    out.insert(out.end(), values.begin(), values.end());
    return out;
}

// Writes bytes to path, gzip-compressed when gzip (and zlib is there).
void write_file(const std::string &path, const std::vector<unsigned char> &bytes, bool gzip) {
#ifndef NABLA_WITH_ZLIB
    gzip = false;
#endif
    if (gzip) {
#ifdef NABLA_WITH_ZLIB
        gzFile f = gzopen(path.c_str(), "wb");
        ASSERT_NE(f, nullptr);
        gzwrite(f, bytes.data(), (unsigned)bytes.size());
        gzclose(f);
#endif
    } else {
        FILE *f = fopen(path.c_str(), "wb");
        ASSERT_NE(f, nullptr);
        fwrite(bytes.data(), 1, bytes.size(), f);
        fclose(f);
    }
}

TEST(Idx, ReadsGzipAndPlainFiles) {
    std::string dir = temp_dir();
    std::vector<unsigned char> values = {0, 1, 2, 250, 251, 255};
    for (bool gzip : {true, false}) {
        std::string path = dir + (gzip ? "/a.gz" : "/a.idx");
        write_file(path, idx_bytes({2, 3}, values), gzip);
        nb_tensor *t = nullptr;
        ASSERT_EQ(nb_idx_read(path.c_str(), &t), NB_OK) << nb_last_error();
        T owned(t);
        EXPECT_EQ(nb_dtype_of(t), NB_U8);
        EXPECT_EQ(shape_str(Shape(nb_shape(t), nb_shape(t) + nb_ndim(t))), "[2,3]");
        Host h = read_tensor(t);
        for (size_t i = 0; i < values.size(); i++) EXPECT_EQ(h.v[i], values[i]);
        std::remove(path.c_str());
    }
}

TEST(Idx, BrokenFilesFailNamingThePath) {
    std::string dir = temp_dir(), path = dir + "/broken.gz";
    struct Broken {
        std::vector<unsigned char> bytes;
        const char *says;
    };
    std::vector<unsigned char> good = idx_bytes({2, 2}, {1, 2, 3, 4});
    std::vector<unsigned char> truncated(good.begin(), good.end() - 1), extra = good;
    extra.push_back(9);
    std::vector<unsigned char> wrong_type = good;
    wrong_type[2] = 0x0D;
    std::vector<unsigned char> zero_dim = idx_bytes({0, 2}, {});
    for (const Broken &b : std::vector<Broken>{{truncated, "truncated"},
                                               {extra, "more bytes"},
                                               {wrong_type, "not an IDX file"},
                                               {zero_dim, "has size 0"},
                                               {{0, 0}, "truncated"}}) {
        write_file(path, b.bytes, true);
        nb_tensor *t = nullptr;
        EXPECT_EQ(nb_idx_read(path.c_str(), &t), NB_ERR_IO) << b.says;
        EXPECT_EQ(t, nullptr);
        std::string message = nb_last_error();
        EXPECT_NE(message.find(path), std::string::npos) << message;
        EXPECT_NE(message.find(b.says), std::string::npos) << message;
    }
    nb_tensor *t = nullptr;
    EXPECT_EQ(nb_idx_read((dir + "/missing.gz").c_str(), &t), NB_ERR_IO);
    EXPECT_NE(std::string(nb_last_error()).find("cannot open"), std::string::npos);
    std::remove(path.c_str());
}

#ifndef NABLA_WITH_ZLIB
TEST(Idx, GzipFilesNeedZlib) {
    std::string path = temp_dir() + "/compressed.gz";
    write_file(path, {0x1f, 0x8b, 8, 0, 0, 0, 0, 0}, false);
    nb_tensor *t = nullptr;
    EXPECT_EQ(nb_idx_read(path.c_str(), &t), NB_ERR_IO);
    EXPECT_NE(std::string(nb_last_error()).find("gzip-compressed and nabla was built without zlib"),
              std::string::npos)
        << nb_last_error();
    std::remove(path.c_str());
}
#endif

TEST(FashionMnist, LoadsAndNormalizesASplit) {
    std::string dir = temp_dir();
    std::vector<unsigned char> pixels(3 * 28 * 28);
    for (size_t i = 0; i < pixels.size(); i++) pixels[i] = (unsigned char)(i * 7 % 256);
    write_file(dir + "/t10k-images-idx3-ubyte.gz", idx_bytes({3, 28, 28}, pixels), true);
    write_file(dir + "/t10k-labels-idx1-ubyte.gz", idx_bytes({3}, {9, 0, 4}), true);
    nb_tensor *images = nullptr, *labels = nullptr;
    ASSERT_EQ(nb_fashion_mnist_load(dir.c_str(), false, &images, &labels), NB_OK) << nb_last_error();
    T oi(images), ol(labels);
    EXPECT_EQ(shape_str(Shape(nb_shape(images), nb_shape(images) + 4)), "[3,1,28,28]");
    EXPECT_EQ(nb_dtype_of(labels), NB_I64);
    EXPECT_EQ(read_tensor(labels).v, (std::vector<double>{9, 0, 4}));
    Host x = read_tensor(images);
    for (size_t i = 0; i < pixels.size(); i += 97)
        EXPECT_NEAR(x.v[i], (pixels[i] / 255.0 - 0.2860) / 0.3530, 1e-5);
    // a decompressed copy next to the .gz file is read first
    write_file(dir + "/t10k-labels-idx1-ubyte", idx_bytes({3}, {1, 2, 3}), false);
    ASSERT_EQ(nb_fashion_mnist_load(dir.c_str(), false, &images, &labels), NB_OK) << nb_last_error();
    T oi2(images), ol2(labels);
    EXPECT_EQ(read_tensor(labels).v, (std::vector<double>{1, 2, 3}));
    std::remove((dir + "/t10k-labels-idx1-ubyte").c_str());
    // the training split is missing in this directory
    EXPECT_EQ(nb_fashion_mnist_load(dir.c_str(), true, &images, &labels), NB_ERR_IO);
    EXPECT_NE(std::string(nb_last_error()).find(dir + "/train-images-idx3-ubyte.gz"), std::string::npos)
        << nb_last_error();
    // labels that do not match the images
    write_file(dir + "/t10k-labels-idx1-ubyte.gz", idx_bytes({2}, {1, 2}), true);
    EXPECT_EQ(nb_fashion_mnist_load(dir.c_str(), false, &images, &labels), NB_ERR_IO);
    EXPECT_NE(std::string(nb_last_error()).find("t10k labels in " + dir + " are [2] for 3 images"), std::string::npos)
        << nb_last_error();
}

// Sharded batches: world ranks (each with its generator seeded alike) see
// between them, at every step, the single-process batch of world times the
// rows, in rank order, for two epochs; a final short global batch is dropped
// or filled up from the epoch's first rows.
TEST(Batches, ShardsMakeUpTheSingleProcessEpoch) {
    const int64_t n = 23;
    T images(nb_arange(0, (double)n, 1, NB_F32, nb_cpu()));
    T labels(nb_arange(100, 100 + (double)n, 1, NB_I64, nb_cpu()));
    for (bool drop_last : {true, false})
        for (int world : {1, 2, 3}) {
            const int64_t local = 3, global = local * world;
            nb_generator *g0 = nb_generator_create(11);
            nb_batches *single = nb_batches_create(images, labels, global, true, drop_last, g0);
            std::vector<nb_batches *> shards;
            std::vector<nb_generator *> gens;
            for (int r = 0; r < world; r++) {
                gens.push_back(nb_generator_create(11));
                shards.push_back(nb_batches_create(images, labels, local, true, drop_last, gens.back()));
                ASSERT_EQ(nb_batches_shard(shards.back(), r, world), NB_OK) << nb_last_error();
                EXPECT_EQ(nb_batches_count(shards.back()), drop_last ? n / global : (n + global - 1) / global);
            }
            for (int epoch = 0; epoch < 2; epoch++) {
                std::vector<double> first_rows;
                int64_t steps = 0;
                nb_tensor *x, *y;
                while (nb_batches_next(single, &x, &y)) {
                    Host want = read_tensor(x);
                    nb_release(x);
                    nb_release(y);
                    if (first_rows.empty()) first_rows = want.v;
                    std::vector<double> got;
                    for (int r = 0; r < world; r++) {
                        ASSERT_TRUE(nb_batches_next(shards[r], &x, &y)) << nb_last_error();
                        Host hx = read_tensor(x), hy = read_tensor(y);
                        if (world > 1) {
                            EXPECT_EQ(hx.numel(), local) << "every rank gets a full batch";
                        }
                        for (int64_t i = 0; i < hx.numel(); i++) EXPECT_EQ(hy.v[i], hx.v[i] + 100);
                        got.insert(got.end(), hx.v.begin(), hx.v.end());
                        nb_release(x);
                        nb_release(y);
                    }
                    // a short last batch: the shards fill it up with the epoch's first rows
                    std::vector<double> expected = want.v;
                    for (size_t i = 0; expected.size() < got.size(); i++) expected.push_back(first_rows[i]);
                    EXPECT_EQ(got, expected) << "world " << world << " step " << steps;
                    steps++;
                }
                for (int r = 0; r < world; r++) EXPECT_FALSE(nb_batches_next(shards[r], &x, &y)) << "epochs end together";
            }
            EXPECT_EQ(nb_batches_shard(shards[0], 0, world), NB_ERR_INVALID) << "after the first take";
            for (int r = 0; r < world; r++) {
                nb_batches_free(shards[r]);
                nb_generator_free(gens[r]);
            }
            nb_batches_free(single);
            nb_generator_free(g0);
        }
    nb_batches *b = nb_batches_create(images, labels, 4, false, false, nullptr);
    EXPECT_EQ(nb_batches_shard(b, 2, 2), NB_ERR_INVALID);
    EXPECT_EQ(nb_batches_shard(b, 0, 0), NB_ERR_INVALID);
    EXPECT_EQ(nb_batches_shard(nullptr, 0, 1), NB_ERR_INVALID);
    nb_batches_free(b);
}

TEST(Batches, ShuffledEpochsCoverEveryRowOnceAndRepeatWithTheSeed) {
    int64_t n = 10;
    T images(nb_arange(0, 10, 1, NB_F32, nb_cpu()));
    T labels(nb_arange(100, 110, 1, NB_I64, nb_cpu()));
    auto epoch_orders = [&](uint64_t seed) {
        nb_generator *gen = nb_generator_create(seed);
        nb_batches *b = nb_batches_create(images, labels, 4, true, false, gen);
        EXPECT_EQ(nb_batches_count(b), 3);
        std::vector<std::vector<double>> epochs;
        for (int e = 0; e < 2; e++) {
            std::vector<double> order;
            nb_tensor *x, *y;
            std::vector<int64_t> sizes;
            while (nb_batches_next(b, &x, &y)) {
                Host hx = read_tensor(x), hy = read_tensor(y);
                sizes.push_back(hx.numel());
                for (int64_t i = 0; i < hx.numel(); i++) {
                    EXPECT_EQ(hy.v[i], hx.v[i] + 100) << "rows stay paired";
                    order.push_back(hx.v[i]);
                }
                nb_release(x);
                nb_release(y);
            }
            EXPECT_EQ(sizes, (std::vector<int64_t>{4, 4, 2}));
            EXPECT_EQ(std::set<double>(order.begin(), order.end()).size(), (size_t)n);
            epochs.push_back(order);
        }
        nb_batches_free(b);
        nb_generator_free(gen);
        return epochs;
    };
    auto a = epoch_orders(1), b = epoch_orders(1), c = epoch_orders(2);
    EXPECT_EQ(a, b);
    EXPECT_NE(a[0], a[1]) << "each epoch reshuffles";
    EXPECT_NE(a, c);
    nb_batches *drop = nb_batches_create(images, labels, 4, false, true, nullptr);
    EXPECT_EQ(nb_batches_count(drop), 2);
    nb_batches_free(drop);
    EXPECT_EQ(nb_batches_create(images, labels, 0, false, false, nullptr), nullptr);
    EXPECT_EQ(nb_last_status(), NB_ERR_INVALID);
}

} // namespace
