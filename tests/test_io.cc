// safetensors files, state dicts and checkpoints (include/nabla/io.h).
// Files are checked against the format's definition byte by byte here, and
// against the Python safetensors package in tests/python/test_interop.py.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "harness.h"
#ifdef NABLA_TEST_DLPACK
#include <nabla/dlpack.h>
#endif

extern "C" void nb__fail_io_step(int64_t k);
extern "C" int64_t nb__io_steps_seen(void);

namespace {

// A fresh folder under /tmp, removed with everything in it.
struct TempDir {
    std::string path;
    TempDir() {
        char name[] = "/tmp/nabla_io_XXXXXX";
        path = mkdtemp(name);
    }
    ~TempDir() {
        DIR *d = opendir(path.c_str());
        while (struct dirent *e = d ? readdir(d) : nullptr)
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink((path + "/" + e->d_name).c_str());
        if (d) closedir(d);
        rmdir(path.c_str());
    }
    std::string file(const char *name) const { return path + "/" + name; }
    std::vector<std::string> names() const {
        std::vector<std::string> out;
        DIR *d = opendir(path.c_str());
        while (struct dirent *e = d ? readdir(d) : nullptr)
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) out.push_back(e->d_name);
        if (d) closedir(d);
        return out;
    }
};

std::string read_bytes(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string &path, const std::string &bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
}

// A file of the format: the 8-byte length, the header as given, the data.
std::string safetensors_bytes(const std::string &header, const std::string &data) {
    uint64_t n = header.size();
    std::string out(reinterpret_cast<const char *>(&n), 8);
    return out + header + data;
}

std::vector<unsigned char> bytes_of(const nb_tensor *t) {
    std::vector<unsigned char> out((size_t)nb_numel(t) * nb_dtype_size(nb_dtype_of(t)));
    EXPECT_EQ(nb_to_host(t, out.data(), out.size()), NB_OK) << nb_last_error();
    return out;
}

// A tensor of dtype with distinct values (bools alternate), shape as given.
nb_tensor *sample(nb_dtype dtype, Shape shape, double scale = 1.0) {
    Host h;
    h.shape = shape;
    for (int64_t i = 0; i < numel_of(shape); i++)
        h.v.push_back(dtype == NB_BOOL ? (double)(i % 3 == 1) : dtype == NB_U8 ? (double)((i * 37) % 256)
                      : nb_dtype_is_float(dtype) ? scale * std::sin(0.7 * (double)i + 0.1) * 100
                                                 : (double)(i * 1000003 % 200001) - 100000);
    return make_tensor(h, dtype);
}

const nb_dtype kAllDtypes[] = {NB_F32, NB_F64, NB_F16, NB_BF16, NB_I32, NB_I64, NB_U8, NB_BOOL};

TEST(Safetensors, EveryDtypeAndLayoutRoundTripsOnEveryDevice) {
    TempDir dir;
    std::vector<nb_device> devices = {nb_cpu()};
    if (nb_cuda_device_count() > 0) devices.push_back(nb_cuda(0));
    else std::printf("[ skipped  ] the CUDA half: no GPU\n");
    for (nb_device from : devices)
        for (nb_device to : devices) {
            std::vector<nb_tensor *> made;
            std::vector<nb_named_tensor> named;
            for (nb_dtype dtype : kAllDtypes) {
                nb_tensor *plain = sample(dtype, {3, 5});
                nb_tensor *on = nb_to(plain, from);
                nb_tensor *transposed = nb_transpose(on, 0, 1); // non-contiguous: saved row-major
                nb_tensor *scalar_here = sample(dtype, {}), *empty_here = sample(dtype, {0, 4});
                nb_tensor *scalar = nb_to(scalar_here, from), *empty = nb_to(empty_here, from);
                for (nb_tensor *t : {plain, on, transposed, scalar, empty, scalar_here, empty_here}) made.push_back(t);
                std::string base = nb_dtype_name(dtype);
                for (auto [suffix, t] : {std::pair<const char *, nb_tensor *>{".t", transposed}, {".scalar", scalar},
                                         {".empty", empty}, {".plain", on}}) {
                    nb_named_tensor n = {};
                    snprintf(n.name, sizeof n.name, "%s%s", base.c_str(), suffix);
                    n.tensor = t;
                    named.push_back(n);
                }
            }
            std::string path = dir.file("all.safetensors");
            const char *meta[] = {"step", "12", "note", "é \"quoted\"", nullptr};
            nb_save_options options = {.metadata = meta, .no_fsync = false};
            ASSERT_EQ(nb_safetensors_save(path.c_str(), named.data(), (int)named.size(), &options), NB_OK)
                << nb_last_error();
            nb_safetensors *f = nullptr;
            ASSERT_EQ(nb_safetensors_open(path.c_str(), &f), NB_OK) << nb_last_error();
            EXPECT_EQ(nb_safetensors_count(f), (int)named.size());
            EXPECT_STREQ(nb_safetensors_metadata(f, "step"), "12");
            EXPECT_STREQ(nb_safetensors_metadata(f, "note"), "é \"quoted\"");
            EXPECT_EQ(nb_safetensors_metadata(f, "absent"), nullptr);
            for (const nb_named_tensor &n : named) {
                const nb_safetensors_entry *e = nb_safetensors_find(f, n.name);
                ASSERT_NE(e, nullptr) << n.name;
                EXPECT_EQ(e->dtype, nb_dtype_of(n.tensor)) << n.name;
                EXPECT_EQ(Shape(e->shape, e->shape + e->ndim), Shape(nb_shape(n.tensor), nb_shape(n.tensor) + nb_ndim(n.tensor)));
                nb_tensor *back = nullptr;
                ASSERT_EQ(nb_safetensors_get(f, n.name, to, &back), NB_OK) << nb_last_error();
                EXPECT_EQ(nb_device_of(back).type, to.type);
                EXPECT_EQ(bytes_of(back), bytes_of(n.tensor)) << n.name << " from device type " << from.type;
                nb_tensor *into = nb_zeros(nb_ndim(n.tensor), nb_shape(n.tensor), nb_dtype_of(n.tensor), to);
                ASSERT_EQ(nb_safetensors_read_into(f, n.name, into, false), NB_OK) << nb_last_error();
                EXPECT_EQ(bytes_of(into), bytes_of(n.tensor)) << n.name;
                nb_release(into);
                nb_release(back);
            }
            nb_safetensors_close(f);
            for (nb_tensor *t : made) nb_release(t);
        }
}

TEST(Safetensors, TheFileIsTheFormatByteForByte) {
    TempDir dir;
    nb_tensor *a = sample(NB_F32, {2, 3}), *b = sample(NB_I64, {1});
    nb_named_tensor named[] = {{"a", a}, {"b", b}};
    std::string path = dir.file("x.safetensors");
    ASSERT_EQ(nb_safetensors_save(path.c_str(), named, 2, nullptr), NB_OK) << nb_last_error();
    std::string bytes = read_bytes(path);
    uint64_t n;
    memcpy(&n, bytes.data(), 8);
    EXPECT_EQ(n % 8, 0u) << "the data starts 8-byte aligned";
    std::string header = bytes.substr(8, n);
    std::string json = header.substr(0, header.find_last_not_of(' ') + 1);
    EXPECT_EQ(json, R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
                    R"("b":{"dtype":"I64","shape":[1],"data_offsets":[24,32]}})");
    std::string data = bytes.substr(8 + n);
    ASSERT_EQ(data.size(), 32u);
    std::vector<unsigned char> expected = bytes_of(a), tail = bytes_of(b);
    expected.insert(expected.end(), tail.begin(), tail.end());
    EXPECT_EQ(std::vector<unsigned char>(data.begin(), data.end()), expected);
    nb_release(a);
    nb_release(b);
}

TEST(Safetensors, ConvertingAndMismatchedReads) {
    TempDir dir;
    nb_tensor *a = sample(NB_F64, {4});
    nb_named_tensor named[] = {{"a", a}};
    std::string path = dir.file("x.safetensors");
    ASSERT_EQ(nb_safetensors_save(path.c_str(), named, 1, nullptr), NB_OK);
    nb_safetensors *f;
    ASSERT_EQ(nb_safetensors_open(path.c_str(), &f), NB_OK);
    const int64_t four_shape[] = {4}, five_shape[] = {5};
    nb_tensor *f32 = nb_zeros(1, four_shape, NB_F32, nb_cpu());
    EXPECT_EQ(nb_safetensors_read_into(f, "a", f32, false), NB_ERR_DTYPE);
    EXPECT_NE(std::string(nb_last_error()).find("\"a\" is f64 in the file but f32 here"), std::string::npos)
        << nb_last_error();
    ASSERT_EQ(nb_safetensors_read_into(f, "a", f32, true), NB_OK) << nb_last_error();
    Host h = read_tensor(a), g = read_tensor(f32);
    for (size_t i = 0; i < h.v.size(); i++) EXPECT_EQ(g.v[i], (double)(float)h.v[i]);
    nb_tensor *wrong = nb_zeros(1, five_shape, NB_F64, nb_cpu());
    EXPECT_EQ(nb_safetensors_read_into(f, "a", wrong, true), NB_ERR_SHAPE);
    nb_tensor *t = nullptr;
    EXPECT_EQ(nb_safetensors_get(f, "nope", nb_cpu(), &t), NB_ERR_INDEX);
    EXPECT_NE(std::string(nb_last_error()).find("has no tensor \"nope\""), std::string::npos);
    EXPECT_EQ(t, nullptr);
    nb_safetensors_close(f);
    for (nb_tensor *x : {a, f32, wrong}) nb_release(x);
}

TEST(Safetensors, BadArgumentsToSave) {
    TempDir dir;
    std::string path = dir.file("x.safetensors");
    nb_tensor *a = sample(NB_F32, {2});
    nb_named_tensor twice[] = {{"a", a}, {"a", a}}, reserved[] = {{"__metadata__", a}}, empty[] = {{"", a}},
                    null[] = {{"a", nullptr}};
    EXPECT_EQ(nb_safetensors_save(path.c_str(), twice, 2, nullptr), NB_ERR_INVALID);
    EXPECT_NE(std::string(nb_last_error()).find("tensors 0 and 1 are both named \"a\""), std::string::npos);
    EXPECT_EQ(nb_safetensors_save(path.c_str(), reserved, 1, nullptr), NB_ERR_INVALID);
    EXPECT_EQ(nb_safetensors_save(path.c_str(), empty, 1, nullptr), NB_ERR_INVALID);
    EXPECT_EQ(nb_safetensors_save(path.c_str(), null, 1, nullptr), NB_ERR_INVALID);
    EXPECT_EQ(nb_safetensors_save(nullptr, twice, 1, nullptr), NB_ERR_INVALID);
    EXPECT_EQ(nb_safetensors_save(path.c_str(), nullptr, 1, nullptr), NB_ERR_INVALID);
    const char *odd[] = {"key", nullptr, nullptr};
    nb_save_options options = {.metadata = odd, .no_fsync = false};
    EXPECT_EQ(nb_safetensors_save(path.c_str(), twice, 1, &options), NB_ERR_INVALID);
    EXPECT_NE(std::string(nb_last_error()).find("metadata key \"key\" has no value"), std::string::npos);
    EXPECT_EQ(nb_safetensors_save((dir.path + "/no/such/folder/x").c_str(), twice, 1, nullptr), NB_ERR_IO);
    EXPECT_NE(std::string(nb_last_error()).find("cannot create a temporary file"), std::string::npos)
        << nb_last_error();
    nb_safetensors *f = nullptr;
    EXPECT_EQ(nb_safetensors_open(nullptr, &f), NB_ERR_INVALID);
    EXPECT_EQ(nb_safetensors_open(path.c_str(), nullptr), NB_ERR_INVALID);
    EXPECT_EQ(nb_safetensors_open(dir.path.c_str(), &f), NB_ERR_IO) << "a folder";
    EXPECT_EQ(nb_safetensors_open(dir.file("absent").c_str(), &f), NB_ERR_IO);
    EXPECT_EQ(f, nullptr);
    nb_release(a);
}

// Fails each file operation of a save in turn: the target must then hold
// the old file or the new one, whole, and no temporary file may remain.
TEST(Safetensors, ASaveFailedAtEveryStepLeavesTheOldFileOrTheNew) {
    TempDir dir;
    std::string path = dir.file("model.safetensors");
    nb_tensor *old_t = sample(NB_F32, {3}), *new_t = sample(NB_F32, {100, 1000}, 2.0);
    nb_named_tensor old_named[] = {{"w", old_t}}, new_named[] = {{"w", new_t}, {"b", old_t}};
    ASSERT_EQ(nb_safetensors_save(path.c_str(), old_named, 1, nullptr), NB_OK);
    std::string old_bytes = read_bytes(path);
    nb__fail_io_step(0);
    std::string scratch = dir.file("count.safetensors");
    ASSERT_EQ(nb_safetensors_save(scratch.c_str(), new_named, 2, nullptr), NB_OK);
    std::string new_bytes = read_bytes(scratch);
    unlink(scratch.c_str());
    int64_t steps = nb__io_steps_seen();
    ASSERT_GE(steps, 8) << "create, 3 writes, fsync, close, rename, the folder's open and fsync";
    int olds = 0, news = 0;
    for (int64_t k = 1; k <= steps; k++) {
        nb__fail_io_step(k);
        nb_status status = nb_safetensors_save(path.c_str(), new_named, 2, nullptr);
        nb__fail_io_step(0);
        EXPECT_EQ(status, NB_ERR_IO) << "step " << k;
        EXPECT_NE(std::string(nb_last_error()).find("nb_safetensors_save: cannot"), std::string::npos)
            << nb_last_error();
        std::string now = read_bytes(path);
        EXPECT_TRUE(now == old_bytes || now == new_bytes) << "step " << k << " tore the file";
        olds += now == old_bytes;
        news += now == new_bytes;
        nb_safetensors *f;
        ASSERT_EQ(nb_safetensors_open(path.c_str(), &f), NB_OK) << "step " << k << ": " << nb_last_error();
        nb_safetensors_close(f);
        EXPECT_EQ(dir.names(), std::vector<std::string>{"model.safetensors"}) << "step " << k;
        if (now == new_bytes) write_bytes(path, old_bytes);
    }
    std::printf("[   info   ] %lld steps failed in turn: %d left the old file, %d the new one (after the "
                "rename)\n", (long long)steps, olds, news);
    EXPECT_EQ(news, 2) << "only the folder's open and fsync come after the rename";
    // without the flushes: three steps fewer, the same file
    nb_save_options no_fsync = {};
    no_fsync.no_fsync = true;
    nb__fail_io_step(0);
    ASSERT_EQ(nb_safetensors_save(path.c_str(), new_named, 2, &no_fsync), NB_OK) << nb_last_error();
    EXPECT_EQ(nb__io_steps_seen(), steps - 3);
    EXPECT_EQ(read_bytes(path), new_bytes);
    nb_release(old_t);
    nb_release(new_t);
}

struct BadFile {
    const char *what;
    std::string bytes;
    nb_status status;
    const char *message;
};

std::string entry(const char *name, const char *dtype, const char *shape, const char *offsets) {
    return std::string("\"") + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
           ",\"data_offsets\":" + offsets + "}";
}

TEST(Safetensors, EveryMalformedFileIsAStatusNamingTheProblem) {
    TempDir dir;
    std::string eight(8, '\1'), four(4, '\1');
    auto one = [](const std::string &e, const std::string &data) { return safetensors_bytes("{" + e + "}", data); };
    std::string huge_length("\xff\xff\xff\xff\xff\xff\xff\x7f", 8);
    const std::vector<BadFile> cases = {
        {"empty file", "", NB_ERR_IO, "0 bytes, fewer than the 8 of the header length"},
        {"short length", "abc", NB_ERR_IO, "fewer than the 8"},
        {"length past the end", safetensors_bytes("{}", "").replace(0, 1, "\x40"), NB_ERR_IO,
         "the header length 64 runs past the end of the 10-byte file"},
        {"length past the limit", huge_length + "{}", NB_ERR_IO, "past the limit of 100000000"},
        {"not JSON", safetensors_bytes("{\"a\":", ""), NB_ERR_IO, "the header is not JSON"},
        {"JSON array", safetensors_bytes("[1, 2]", ""), NB_ERR_IO, "not an object"},
        {"bytes after the JSON", safetensors_bytes("{} x", ""), NB_ERR_IO, "bytes after the header's JSON"},
        {"entry not an object", safetensors_bytes("{\"a\":3}", ""), NB_ERR_IO, "tensor \"a\" is not a JSON object"},
        {"no dtype", safetensors_bytes("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", four), NB_ERR_IO,
         "tensor \"a\" lacks \"dtype\""},
        {"unknown field", safetensors_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}",
                                            four), NB_ERR_IO, "unknown field \"x\""},
        {"field twice", safetensors_bytes("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],"
                                          "\"data_offsets\":[0,4]}}", four), NB_ERR_IO, "field \"dtype\" given twice"},
        {"unknown dtype", one(entry("a", "F33", "[1]", "[0,4]"), four), NB_ERR_IO, "unknown dtype \"F33\""},
        {"dtype nabla lacks", one(entry("a", "I8", "[4]", "[0,4]"), four), NB_ERR_UNSUPPORTED,
         "tensor \"a\" is I8, which nabla has no tensors for"},
        {"dtype not a string", safetensors_bytes("{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", four),
         NB_ERR_IO, "\"dtype\" must be a string"},
        {"shape not an array", one(entry("a", "F32", "4", "[0,4]"), four), NB_ERR_IO, "\"shape\" must be an array"},
        {"negative size", one(entry("a", "F32", "[-1]", "[0,4]"), four), NB_ERR_IO, "shape entry 0 is not a size"},
        {"fractional size", one(entry("a", "F32", "[1.5]", "[0,4]"), four), NB_ERR_IO, "shape entry 0 is not a size"},
        {"size as a string", one(entry("a", "F32", "[\"1\"]", "[0,4]"), four), NB_ERR_IO, "not a size"},
        {"too many dims", one(entry("a", "U8", "[1,1,1,1,1,1,1,1,1]", "[0,1]"), "x"), NB_ERR_UNSUPPORTED,
         "has 9 dims, nabla at most 8"},
        {"shape overflowing", one(entry("a", "F32", "[4294967296,4294967296]", "[0,4]"), four), NB_ERR_IO,
         "overflows 64 bits"},
        {"bytes overflowing", one(entry("a", "F64", "[4294967296,1073741824]", "[0,4]"), four), NB_ERR_IO,
         "overflows 64 bits"},
        {"offsets not two", one(entry("a", "F32", "[1]", "[0]"), four), NB_ERR_IO, "must be two byte offsets"},
        {"offsets reversed", one(entry("a", "F32", "[0]", "[4,0]"), four), NB_ERR_IO, "are not a range"},
        {"offsets past the data", one(entry("a", "F32", "[2]", "[0,8]"), four), NB_ERR_IO,
         "data_offsets [0, 8] are not a range in the 4 bytes of data"},
        {"offsets past 2^53", one(entry("a", "U8", "[1]", "[0,18446744073709551615]"), "x"), NB_ERR_IO,
         "must be two byte offsets"},
        {"size not matching", one(entry("a", "F32", "[2]", "[0,4]"), four), NB_ERR_IO,
         "hold 4 bytes, but shape [2] of f32 needs 8"},
        {"overlap", safetensors_bytes("{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[1]", "[4,8]") +
                                      "}", eight), NB_ERR_IO, "tensor \"b\" starts at data byte 4, before the tensor before it ends"},
        {"hole", safetensors_bytes("{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("b", "F32", "[1]", "[8,12]") +
                                   "}", eight + four), NB_ERR_IO, "tensor \"b\" starts at data byte 8, after"},
        {"data before the first tensor", one(entry("a", "F32", "[1]", "[4,8]"), eight), NB_ERR_IO,
         "starts at data byte 4, after the header ends"},
        {"trailing garbage", one(entry("a", "F32", "[1]", "[0,4]"), eight), NB_ERR_IO,
         "4 bytes after the last tensor's data"},
        {"duplicate names", safetensors_bytes("{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("a", "F32", "[1]", "[4,8]") +
                                              "}", eight), NB_ERR_IO, "tensor \"a\" is named twice"},
        {"metadata not strings", safetensors_bytes("{\"__metadata__\":{\"k\":1}}", ""), NB_ERR_IO,
         "\"__metadata__\" entry \"k\" is not a string"},
        {"metadata not an object", safetensors_bytes("{\"__metadata__\":[]}", ""), NB_ERR_IO, "is not a JSON object"},
        {"metadata twice", safetensors_bytes("{\"__metadata__\":{},\"__metadata__\":{}}", ""), NB_ERR_IO,
         "given twice"},
    };
    std::string path = dir.file("bad.safetensors");
    for (const BadFile &c : cases) {
        write_bytes(path, c.bytes);
        nb_safetensors *f = reinterpret_cast<nb_safetensors *>(1);
        nb_clear_error();
        EXPECT_EQ(nb_safetensors_open(path.c_str(), &f), c.status) << c.what << ": " << nb_last_error();
        EXPECT_EQ(f, nullptr) << c.what;
        std::string message = nb_last_error();
        EXPECT_NE(message.find("nb_safetensors_open: " + path + ": "), std::string::npos) << c.what << ": " << message;
        EXPECT_NE(message.find(c.message), std::string::npos) << c.what << ": " << message;
        std::printf("[   info   ] %-28s %s: %s\n", c.what, nb_status_name(c.status),
                    message.substr(message.find(": ", 22) + 2).c_str());
    }
    // A well-formed file whose BOOL tensor holds a byte that is no bool:
    // opening succeeds (the header is sound), reading it is the error.
    write_bytes(path, one(entry("flags", "BOOL", "[3]", "[0,3]"), std::string("\0\1\2", 3)));
    nb_safetensors *f;
    ASSERT_EQ(nb_safetensors_open(path.c_str(), &f), NB_OK) << nb_last_error();
    nb_tensor *t = nullptr;
    EXPECT_EQ(nb_safetensors_get(f, "flags", nb_cpu(), &t), NB_ERR_IO);
    EXPECT_NE(std::string(nb_last_error()).find("\"flags\" is BOOL but element 2 is byte 2"), std::string::npos)
        << nb_last_error();
    nb_safetensors_close(f);
    // Empty headers and empty tensors are fine.
    write_bytes(path, safetensors_bytes("{}      ", ""));
    ASSERT_EQ(nb_safetensors_open(path.c_str(), &f), NB_OK) << nb_last_error();
    EXPECT_EQ(nb_safetensors_count(f), 0);
    nb_safetensors_close(f);
}

// A tensor past 4 GiB of data: a sparse file (4.5 GB of zeros that take no
// disk) whose last tensor starts beyond 2^32 bytes.
TEST(Safetensors, OffsetsPastFourGiB) {
    TempDir dir;
    std::string path = dir.file("big.safetensors");
    const int64_t big = 4500000000LL;
    std::string header = "{" + entry("big", "U8", ("[" + std::to_string(big) + "]").c_str(),
                                      ("[0," + std::to_string(big) + "]").c_str()) +
                         "," + entry("tail", "F32", "[2]", ("[" + std::to_string(big) + "," + std::to_string(big + 8) + "]").c_str()) + "}";
    write_bytes(path, safetensors_bytes(header, ""));
    float tail[2] = {1.5f, -2.25f};
    {
        FILE *out = fopen(path.c_str(), "r+b");
        ASSERT_NE(out, nullptr);
        ASSERT_EQ(fseeko(out, (off_t)(8 + header.size() + big), SEEK_SET), 0);
        ASSERT_EQ(fwrite(tail, sizeof tail, 1, out), 1u);
        fclose(out);
    }
    nb_safetensors *f;
    ASSERT_EQ(nb_safetensors_open(path.c_str(), &f), NB_OK) << nb_last_error();
    const nb_safetensors_entry *e = nb_safetensors_find(f, "big");
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->nbytes, big);
    nb_tensor *t = nullptr;
    ASSERT_EQ(nb_safetensors_get(f, "tail", nb_cpu(), &t), NB_OK) << nb_last_error();
    EXPECT_EQ(read_tensor(t).v, (std::vector<double>{1.5, -2.25}));
    nb_release(t);
    nb_safetensors_close(f);
}

// The bounded-memory round trip of a 4.5 GB tensor (a broadcast view of one
// byte, written in pieces): 4.5 GB of disk, so only with NABLA_BIG_FILES=1.
TEST(Safetensors, ATensorOfMoreThanFourGiBRoundTrips) {
    if (!getenv("NABLA_BIG_FILES")) GTEST_SKIP() << "needs 4.5 GB of disk: set NABLA_BIG_FILES=1";
    const char *folder = getenv("NABLA_BIG_FILES_DIR");
    std::string path = std::string(folder ? folder : "/tmp") + "/nabla_big.safetensors";
    const int64_t big = 4500000000LL;
    const int64_t single[] = {1};
    nb_tensor *one = nb_full(1, single, 7, NB_U8, nb_cpu());
    nb_tensor *wide = nb_expand(one, 1, &big);
    nb_tensor *tail = sample(NB_F32, {3});
    nb_named_tensor named[] = {{"big", wide}, {"tail", tail}};
    ASSERT_EQ(nb_safetensors_save(path.c_str(), named, 2, nullptr), NB_OK) << nb_last_error();
    nb_safetensors *f;
    ASSERT_EQ(nb_safetensors_open(path.c_str(), &f), NB_OK) << nb_last_error();
    EXPECT_EQ(nb_safetensors_find(f, "big")->nbytes, big);
    nb_tensor *back = nullptr;
    ASSERT_EQ(nb_safetensors_get(f, "tail", nb_cpu(), &back), NB_OK);
    EXPECT_EQ(bytes_of(back), bytes_of(tail));
    FILE *in = fopen(path.c_str(), "rb");
    int64_t start = nb_safetensors_find(f, "big")->offset;
    for (int64_t at : {start, start + ((int64_t)1 << 32), start + big - 1}) {
        fseeko(in, (off_t)at, SEEK_SET);
        EXPECT_EQ(fgetc(in), 7) << "byte " << at;
    }
    fclose(in);
    nb_safetensors_close(f);
    unlink(path.c_str());
    for (nb_tensor *t : {one, wide, tail, back}) nb_release(t);
}

// ---- state dicts and checkpoints ----

// A small network with every kind of state: weights, BatchNorm running
// statistics and count, dropout drawing from gen.
nb_module *small_net(nb_dtype dtype, nb_generator *gen, nb_device device = nb_cpu()) {
    nb_module *children[] = {nb_nn_linear(6, 16, true, dtype, device, gen),
                             nb_nn_batch_norm1d(16, 1e-5, 0.1, true, dtype, device),
                             nb_nn_activation(NB_ACT_RELU), nb_nn_dropout(0.3, gen),
                             nb_nn_linear(16, 3, true, dtype, device, gen)};
    return nb_nn_sequential(5, children);
}

std::vector<std::pair<std::string, std::vector<unsigned char>>> state_of(const nb_module *m) {
    nb_named_tensor named[64];
    int n = nb_module_parameters(m, named, 64);
    n += nb_module_buffers(m, named + n, 64 - n);
    std::vector<std::pair<std::string, std::vector<unsigned char>>> out;
    for (int i = 0; i < n; i++) out.push_back({named[i].name, bytes_of(named[i].tensor)});
    return out;
}

TEST(StateDict, ModulesSaveAndLoadByDottedName) {
    TempDir dir;
    nb_generator *g1 = nb_generator_create(1), *g2 = nb_generator_create(2);
    nb_module *a = small_net(NB_F32, g1), *b = small_net(NB_F32, g2);
    std::string path = dir.file("net.safetensors");
    ASSERT_EQ(nb_module_save(a, path.c_str()), NB_OK) << nb_last_error();
    nb_safetensors *f;
    ASSERT_EQ(nb_safetensors_open(path.c_str(), &f), NB_OK);
    std::vector<std::string> names;
    for (int i = 0; i < nb_safetensors_count(f); i++) names.push_back(nb_safetensors_entry_at(f, i)->name);
    nb_safetensors_close(f);
    EXPECT_EQ(names, (std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias",
                                               "1.running_mean", "1.running_var"}));
    EXPECT_NE(state_of(a), state_of(b));
    ASSERT_EQ(nb_module_load(b, path.c_str(), nullptr), NB_OK) << nb_last_error();
    EXPECT_EQ(state_of(a), state_of(b));
    for (nb_module *m : {a, b}) nb_module_free(m);
    nb_generator_free(g1);
    nb_generator_free(g2);
}

TEST(StateDict, StrictLoadsNameEveryDifferenceAndChangeNothing) {
    TempDir dir;
    nb_module *saved = small_net(NB_F32, nullptr);
    const int64_t xs[] = {8, 6};
    nb_tensor *x = nb_normal(2, xs, 3, 2, NB_F32, nb_cpu(), nullptr);
    nb_release(nb_module_forward(saved, x)); // moves BatchNorm's running statistics off 0 and 1
    nb_release(x);
    std::string path = dir.file("net.safetensors");
    ASSERT_EQ(nb_module_save(saved, path.c_str()), NB_OK);
    nb_module *wider_children[] = {nb_nn_linear(6, 16, true, NB_F32, nb_cpu(), nullptr),
                                   nb_nn_batch_norm1d(16, 1e-5, 0.1, true, NB_F64, nb_cpu()),
                                   nb_nn_linear(16, 5, false, NB_F32, nb_cpu(), nullptr)};
    nb_module *other = nb_nn_sequential(3, wider_children);
    auto before = state_of(other);
    EXPECT_EQ(nb_module_load(other, path.c_str(), nullptr), NB_ERR_INVALID);
    std::string message = nb_last_error();
    for (const char *part : {"nb_module_load: ", "names differ (nothing was loaded)",
                             "1.weight: [16] f32 in the file, [16] f64 here", "2.weight: missing from the file",
                             "4.weight: in the file, not here", "4.bias: in the file, not here"})
        EXPECT_NE(message.find(part), std::string::npos) << part << " in " << message;
    EXPECT_EQ(state_of(other), before) << "a failed strict load changes nothing";
    char report[1024];
    nb_load_options partial = {.partial = true, .convert = true, .report = report, .report_size = sizeof report};
    ASSERT_EQ(nb_module_load(other, path.c_str(), &partial), NB_OK) << nb_last_error();
    EXPECT_NE(std::string(report).find("2.weight: missing from the file"), std::string::npos) << report;
    EXPECT_EQ(std::string(report).find("1.weight"), std::string::npos) << "converted, not skipped: " << report;
    auto loaded = state_of(other), want = state_of(saved);
    EXPECT_EQ(loaded[0], want[0]) << "0.weight loaded";
    nb_named_tensor here[2], there[2];
    ASSERT_EQ(nb_module_buffers(other, here, 2), 2);
    ASSERT_EQ(nb_module_buffers(saved, there, 2), 2);
    for (int i = 0; i < 2; i++) {
        Host f64 = read_tensor(here[i].tensor), f32 = read_tensor(there[i].tensor);
        EXPECT_EQ(nb_dtype_of(here[i].tensor), NB_F64);
        EXPECT_NE(f32.v, std::vector<double>(16, (double)i)) << there[i].name << " moved in training";
        EXPECT_EQ(f64.v, f32.v) << here[i].name << " converted from f32 (exact in f64)";
    }
    for (nb_module *m : {saved, other}) nb_module_free(m);
}

// One training step of small_net on a fixed batch; returns the loss.
double train_step(nb_module *net, nb_optimizer *opt, int step) {
    const int64_t xs[] = {8, 6}, ts[] = {8};
    nb_generator *data = nb_generator_create(1000 + (uint64_t)step);
    nb_named_tensor first[1];
    nb_module_parameters(net, first, 1);
    nb_device device = nb_device_of(first[0].tensor);
    nb_tensor *x = nb_normal(2, xs, 0, 1, nb_dtype_of(first[0].tensor), device, data);
    nb_tensor *t = nb_randint(0, 3, 1, ts, NB_I64, device, data);
    nb_optimizer_zero_grad(opt);
    nb_tensor *logits = nb_module_forward(net, x);
    EXPECT_NE(logits, nullptr) << nb_last_error();
    nb_tensor *loss = nb_cross_entropy(logits, t, NB_REDUCTION_MEAN, 0, -100);
    EXPECT_NE(loss, nullptr) << nb_last_error();
    double value = NAN;
    EXPECT_EQ(nb_backward(loss, nullptr, false), NB_OK) << nb_last_error();
    EXPECT_EQ(nb_item(loss, &value), NB_OK);
    nb_optimizer_set_lr(opt, nb_lr_warmup_cosine(step, 2, 10, 1e-2, 1e-3));
    EXPECT_EQ(nb_optimizer_step(opt), NB_OK) << nb_last_error();
    for (nb_tensor *z : {x, t, logits, loss}) nb_release(z);
    nb_generator_free(data);
    return value;
}

struct TrainingRun {
    nb_generator *gen;
    nb_module *net;
    nb_optimizer *opt;
    TrainingRun(nb_dtype dtype, int kind, nb_device device = nb_cpu()) {
        gen = nb_generator_create(7);
        net = small_net(dtype, gen, device);
        nb_named_tensor named[16];
        int n = nb_module_parameters(net, named, 16);
        nb_tensor *params[16];
        for (int i = 0; i < n; i++) params[i] = named[i].tensor;
        // kinds 3 to 5: two groups (the first parameter alone), rules with more state
        nb_param_group groups[2] = {{params, 1, {}}, {params + 1, n - 1, {}}};
        opt = kind == 0   ? nb_adamw_create(params, n, 1e-2, 0.9, 0.999, 1e-8, 0.01)
              : kind == 1 ? nb_sgd_create(params, n, 1e-2, 0.9, 1e-4, true)
              : kind == 2 ? nb_adam_create(params, n, 1e-2, 0.8, 0.99, 1e-6, 0.0)
              : kind == 3 ? (groups[0].options = {.lr = 1e-2, .momentum_decay = 0.1},
                             groups[1].options = {.lr = 2e-2, .weight_decay = 0.1, .decoupled_weight_decay = true},
                             nb_optimizer_create(NB_OPTIM_NADAM, groups, 2))
              : kind == 4 ? (groups[0].options = {.lr = 1e-2, .momentum = 0.5, .centered = true},
                             groups[1].options = {.lr = 1e-3},
                             nb_optimizer_create(NB_OPTIM_RMSPROP, groups, 2))
                          : (groups[0].options = {.lr = 0.1, .l1 = 1e-3},
                             groups[1].options = {.lr = 0.2, .l2 = 0.1, .beta = 0.5},
                             nb_optimizer_create(NB_OPTIM_FTRL, groups, 2));
    }
    ~TrainingRun() {
        nb_optimizer_free(opt);
        nb_module_free(net);
        nb_generator_free(gen);
    }
    nb_checkpoint checkpoint() {
        return {.model = net, .optimizers = &opt, .n_optimizers = 1, .generators = &gen, .n_generators = 1, .step = 0,
                .metadata = nullptr};
    }
};

// N steps in one go equal k steps, a checkpoint, fresh objects (their
// generator and learning rate moved elsewhere), a load and N - k more: bit
// for bit, losses and parameters; on CUDA too (deterministic kernels, as
// ctest sets NABLA_DETERMINISTIC=1).
TEST(Checkpoint, ResumingIsBitExact) {
    TempDir dir;
    const int total = 6, split = 3;
    std::vector<nb_device> devices = {nb_cpu()};
    if (nb_cuda_device_count() > 0) devices.push_back(nb_cuda(0));
    else std::printf("[ skipped  ] the CUDA half: no GPU\n");
    for (nb_device device : devices)
    for (nb_dtype dtype : {NB_F32, NB_BF16})
        for (int kind : {0, 1, 2, 3, 4, 5}) {
            TrainingRun straight(dtype, kind, device);
            std::vector<double> losses;
            for (int step = 0; step < total; step++) losses.push_back(train_step(straight.net, straight.opt, step));
            std::string path = dir.file("ckpt.safetensors");
            std::vector<double> resumed;
            {
                TrainingRun first(dtype, kind, device);
                for (int step = 0; step < split; step++) resumed.push_back(train_step(first.net, first.opt, step));
                nb_checkpoint c = first.checkpoint();
                c.step = split;
                ASSERT_EQ(nb_checkpoint_save(path.c_str(), &c), NB_OK) << nb_last_error();
            }
            TrainingRun second(dtype, kind, device);
            nb_generator_set_state(second.gen, 99, 12345); // other state: the load must replace it
            nb_optimizer_set_lr(second.opt, 0.5);
            nb_checkpoint c = second.checkpoint();
            ASSERT_EQ(nb_checkpoint_load(path.c_str(), &c), NB_OK) << nb_last_error();
            EXPECT_EQ(c.step, split);
            for (int step = (int)c.step; step < total; step++) resumed.push_back(train_step(second.net, second.opt, step));
            EXPECT_EQ(resumed, losses) << nb_dtype_name(dtype) << " optimizer " << kind;
            EXPECT_EQ(state_of(second.net), state_of(straight.net)) << nb_dtype_name(dtype) << " optimizer " << kind;
            EXPECT_EQ(nb_generator_offset(second.gen), nb_generator_offset(straight.gen));
        }
}

TEST(Checkpoint, MismatchesAreErrors) {
    TempDir dir;
    TrainingRun adamw(NB_F32, 0), sgd(NB_F32, 1);
    train_step(adamw.net, adamw.opt, 0);
    std::string path = dir.file("ckpt.safetensors");
    nb_checkpoint c = adamw.checkpoint();
    ASSERT_EQ(nb_checkpoint_save(path.c_str(), &c), NB_OK);
    nb_checkpoint other = sgd.checkpoint();
    EXPECT_EQ(nb_checkpoint_load(path.c_str(), &other), NB_ERR_INVALID);
    EXPECT_NE(std::string(nb_last_error()).find("holds the state of adamw as optimizer 0, which is sgd"), std::string::npos)
        << nb_last_error();
    TrainingRun grouped(NB_F32, 3);
    train_step(grouped.net, grouped.opt, 0);
    nb_checkpoint g = grouped.checkpoint();
    std::string grouped_path = dir.file("grouped.safetensors");
    ASSERT_EQ(nb_checkpoint_save(grouped_path.c_str(), &g), NB_OK);
    {
        nb_named_tensor named[16];
        int n = nb_module_parameters(grouped.net, named, 16);
        nb_tensor *params[16];
        for (int i = 0; i < n; i++) params[i] = named[i].tensor;
        nb_param_group one = {params, n, {}};
        nb_optimizer *single = nb_optimizer_create(NB_OPTIM_NADAM, &one, 1);
        nb_checkpoint into = {.model = grouped.net, .optimizers = &single, .n_optimizers = 1};
        EXPECT_EQ(nb_checkpoint_load(grouped_path.c_str(), &into), NB_ERR_INVALID);
        EXPECT_NE(std::string(nb_last_error()).find("holds 2 groups for optimizer 0, which has 1"), std::string::npos)
            << nb_last_error();
        nb_optimizer_free(single);
    }
    nb_module *plain = small_net(NB_F32, nullptr);
    std::string module_file = dir.file("module.safetensors");
    ASSERT_EQ(nb_module_save(plain, module_file.c_str()), NB_OK);
    nb_checkpoint just_model = {};
    just_model.model = plain;
    EXPECT_EQ(nb_checkpoint_load(module_file.c_str(), &just_model), NB_ERR_IO);
    EXPECT_NE(std::string(nb_last_error()).find("is not a nabla checkpoint"), std::string::npos) << nb_last_error();
    EXPECT_EQ(nb_checkpoint_load(path.c_str(), nullptr), NB_ERR_INVALID);
    nb_checkpoint bad = {};
    bad.model = plain, bad.n_generators = 2;
    EXPECT_EQ(nb_checkpoint_save(path.c_str(), &bad), NB_ERR_INVALID);
    ASSERT_EQ(nb_checkpoint_load(path.c_str(), &just_model), NB_OK) << "the model alone: " << nb_last_error();
    EXPECT_EQ(state_of(plain), state_of(adamw.net));
    nb_module_free(plain);
}

#ifdef NABLA_TEST_DLPACK
// ---- DLPack ----

TEST(DLPack, ExportAndImportShareMemory) {
    nb_tensor *base = sample(NB_F32, {3, 4});
    nb_tensor *t = nb_transpose(base, 0, 1);
    DLManagedTensor *m = nullptr;
    ASSERT_EQ(nb_to_dlpack(t, &m), NB_OK) << nb_last_error();
    const DLTensor &dl = m->dl_tensor;
    EXPECT_EQ(dl.data, nb_data(t));
    EXPECT_EQ(dl.device.device_type, kDLCPU);
    EXPECT_EQ(dl.ndim, 2);
    EXPECT_EQ((int)dl.dtype.code, (int)kDLFloat);
    EXPECT_EQ(dl.dtype.bits, 32);
    EXPECT_EQ(dl.dtype.lanes, 1);
    EXPECT_EQ(Shape(dl.shape, dl.shape + 2), (Shape{4, 3}));
    EXPECT_EQ(Shape(dl.strides, dl.strides + 2), (Shape{1, 4}));
    Host expected = read_tensor(t);
    nb_release(t);
    nb_release(base); // m keeps the memory alive
    nb_tensor *back = nullptr;
    ASSERT_EQ(nb_from_dlpack(m, &back), NB_OK) << nb_last_error();
    EXPECT_EQ(nb_data(back), dl.data) << "no copy";
    EXPECT_EQ(read_tensor(back).v, expected.v);
    EXPECT_FALSE(nb_is_contiguous(back));
    nb_release(back); // runs m's deleter, which releases the last reference
}

struct Foreign {
    std::vector<double> data;
    int64_t shape[2], strides[2];
    int deleted = 0;
    DLManagedTensor managed{};
    Foreign() : data{1, 2, 3, 4, 5, 6}, shape{2, 3}, strides{3, 1} {
        managed.dl_tensor = {data.data(), {kDLCPU, 0}, 2, {kDLFloat, 64, 1}, shape, strides, 0};
        managed.manager_ctx = this;
        managed.deleter = [](DLManagedTensor *m) { static_cast<Foreign *>(m->manager_ctx)->deleted++; };
    }
};

TEST(DLPack, ImportsForeignMemoryAndCallsItsDeleterOnce) {
    Foreign f;
    f.managed.dl_tensor.byte_offset = 8; // starts at the second element
    f.shape[0] = 1;
    nb_tensor *t = nullptr;
    ASSERT_EQ(nb_from_dlpack(&f.managed, &t), NB_OK) << nb_last_error();
    EXPECT_EQ(read_tensor(t).v, (std::vector<double>{2, 3, 4}));
    nb_tensor *view = nb_slice(t, 1, 1, 3, 1);
    nb_tensor *sum = nb_add(view, view);
    EXPECT_EQ(read_tensor(sum).v, (std::vector<double>{6, 8}));
    nb_release(t);
    EXPECT_EQ(f.deleted, 0) << "the view still holds the storage";
    nb_release(view);
    nb_release(sum);
    EXPECT_EQ(f.deleted, 1);
}

TEST(DLPack, WhatNablaCannotHoldIsAnErrorAndTakesNothing) {
    struct Case {
        const char *what;
        void (*spoil)(Foreign &);
        nb_status status;
        const char *message;
    };
    const Case cases[] = {
        {"two lanes", [](Foreign &f) { f.managed.dl_tensor.dtype.lanes = 2; }, NB_ERR_DTYPE, "2 lanes has no nabla dtype"},
        {"complex", [](Foreign &f) { f.managed.dl_tensor.dtype.code = kDLComplex; }, NB_ERR_DTYPE, "code 5"},
        {"8-bit floats", [](Foreign &f) { f.managed.dl_tensor.dtype.bits = 8; }, NB_ERR_DTYPE, "8 bits"},
        {"negative stride", [](Foreign &f) { f.strides[1] = -1; }, NB_ERR_INVALID, "dim 1 has stride -1"},
        {"misaligned", [](Foreign &f) { f.managed.dl_tensor.byte_offset = 4; }, NB_ERR_INVALID, "not aligned"},
        {"OpenCL", [](Foreign &f) { f.managed.dl_tensor.device.device_type = kDLOpenCL; }, NB_ERR_DEVICE,
         "device type 4"},
        {"a GPU that is not there", [](Foreign &f) { f.managed.dl_tensor.device = {kDLCUDA, 7}; }, NB_ERR_DEVICE, ""},
        {"nine dims", [](Foreign &f) { f.managed.dl_tensor.ndim = 9; }, NB_ERR_SHAPE, "9 dims"},
        {"negative size", [](Foreign &f) { f.shape[0] = -2; }, NB_ERR_SHAPE, "negative size -2"},
        {"no shape", [](Foreign &f) { f.managed.dl_tensor.shape = nullptr; }, NB_ERR_INVALID, "shape is NULL"},
    };
    for (const Case &c : cases) {
        Foreign f;
        c.spoil(f);
        nb_tensor *t = reinterpret_cast<nb_tensor *>(1);
        EXPECT_EQ(nb_from_dlpack(&f.managed, &t), c.status) << c.what << ": " << nb_last_error();
        EXPECT_EQ(t, nullptr) << c.what;
        EXPECT_NE(std::string(nb_last_error()).find(c.message), std::string::npos) << c.what << ": " << nb_last_error();
        EXPECT_EQ(f.deleted, 0) << c.what << ": a failed import takes nothing";
    }
    nb_tensor *t;
    EXPECT_EQ(nb_from_dlpack(nullptr, &t), NB_ERR_INVALID);
    DLManagedTensor *m;
    EXPECT_EQ(nb_to_dlpack(nullptr, &m), NB_ERR_INVALID);
    EXPECT_EQ(m, nullptr);
}

TEST(DLPack, CudaTensorsKeepTheirDevice) {
    if (nb_cuda_device_count() == 0) GTEST_SKIP() << "no GPU";
    nb_tensor *host = sample(NB_BF16, {4, 6});
    nb_tensor *t = nb_to(host, nb_cuda(0));
    DLManagedTensor *m;
    ASSERT_EQ(nb_to_dlpack(t, &m), NB_OK) << nb_last_error();
    EXPECT_EQ(m->dl_tensor.device.device_type, kDLCUDA);
    EXPECT_EQ(m->dl_tensor.device.device_id, 0);
    EXPECT_EQ(m->dl_tensor.data, nb_data(t));
    nb_tensor *back;
    ASSERT_EQ(nb_from_dlpack(m, &back), NB_OK) << nb_last_error();
    EXPECT_EQ(nb_device_of(back).type, NB_DEVICE_CUDA);
    EXPECT_EQ(bytes_of(back), bytes_of(host));
    for (nb_tensor *x : {host, t, back}) nb_release(x);
}

TEST(DLPack, EveryDtypeRoundTrips) {
    for (nb_dtype dtype : kAllDtypes) {
        nb_tensor *t = sample(dtype, {5});
        DLManagedTensor *m;
        ASSERT_EQ(nb_to_dlpack(t, &m), NB_OK);
        nb_tensor *back;
        ASSERT_EQ(nb_from_dlpack(m, &back), NB_OK) << nb_dtype_name(dtype) << ": " << nb_last_error();
        EXPECT_EQ(nb_dtype_of(back), dtype);
        EXPECT_EQ(bytes_of(back), bytes_of(t));
        nb_release(back);
        nb_release(t);
    }
}
#endif

}  // namespace
