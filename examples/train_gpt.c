/* Trains a byte-level GPT on an English text: by default the King James
 * Bible from Debian's bible-kjv package (the output of
 * `bible gen1:1-rev22:21`), else the file given. The last 5% of the text is
 * held out for the validation loss, printed beside the unigram entropy of
 * the bytes (the loss of a model that ignores context). AdamW with linear
 * warmup and cosine decay (weight decay on matrices only), gradient
 * clipping at norm 1, a progress line with tokens/s, and at the end a text
 * sampled with temperature and top-k through the KV cache.
 * benchmarks/torch_gpt.py is the same model and schedule in PyTorch.
 * With --distributed under mpirun, every rank draws the same global batch
 * and trains on its share of it with data parallelism (nb_ddp): the same
 * steps as one process on the whole batch.
 *
 *   train_gpt [--device cpu|cuda] [--text PATH] [--arch gpt2|llama] [--layers N]
 *             [--dim N] [--heads N] [--kv-heads N] [--context N] [--batch N]
 *             [--steps N] [--lr RATE] [--dtype f32|bf16] [--eval-every N]
 *             [--sample N] [--temperature T] [--top-k K] [--seed S] [--distributed]
 *             [--save PATH] [--save-every N] [--resume PATH] [--stop-at N] [--help]
 */
#define EXAMPLE_NAME "train_gpt"
#include "example.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#define VOCAB 256 /* bytes */

typedef struct options {
    nb_device device;
    const char *text, *arch, *save, *resume;
    int layers, heads, kv_heads, eval_every, top_k;
    int64_t dim, context, batch, steps, sample, save_every, stop_at;
    double lr, temperature, peak_tflops;
    nb_dtype dtype;
    uint64_t seed;
    bool distributed;
} options;

static void usage(FILE *to) {
    fprintf(to,
            "usage: train_gpt [--device cpu|cuda] [--text PATH] [--arch gpt2|llama] [--layers N]\n"
            "                 [--dim N] [--heads N] [--kv-heads N] [--context N] [--batch N]\n"
            "                 [--steps N] [--lr RATE] [--dtype f32|bf16] [--eval-every N]\n"
            "                 [--sample N] [--temperature T] [--top-k K] [--seed S] [--peak-tflops F]\n"
            "                 [--distributed] [--save PATH] [--save-every N] [--resume PATH] [--stop-at N]\n"
            "  --device       cpu or cuda (default: cuda when a GPU is present, else cpu)\n"
            "  --text         a text file (default: $NABLA_TEXT, else `bible gen1:1-rev22:21`)\n"
            "  --arch         gpt2: LayerNorm, GELU, learned positions, tied embeddings;\n"
            "                 llama: RMSNorm, SwiGLU, RoPE, separate output (default gpt2)\n"
            "  --layers, --dim, --heads, --kv-heads\n"
            "                 the model (default 4 layers, 256 wide, 4 heads, kv-heads = heads)\n"
            "  --context      tokens per sequence (default 128)\n"
            "  --batch        sequences per step (default 16)\n"
            "  --steps        optimizer steps (default 600)\n"
            "  --lr           AdamW's peak learning rate (default 1e-3; 1/20 warmup, cosine to 1/10)\n"
            "  --dtype        f32 or bf16 parameters (default bf16 on cuda, f32 on cpu;\n"
            "                 bf16 steps through f32 master weights in the optimizer)\n"
            "  --eval-every   steps between validation losses (default 100)\n"
            "  --sample       bytes to sample at the end (default 300; 0 for none)\n"
            "  --temperature  sampling temperature (default 0.8)\n"
            "  --top-k        sample among the k likeliest bytes (default 40)\n"
            "  --seed         seeds initialization, batches and sampling (default 1)\n"
            "  --peak-tflops  the device's dense peak, for model FLOPs utilization (default 989,\n"
            "                 an H100 SXM in bf16)\n"
            "  --distributed  data-parallel over the ranks of mpirun -np N (CPU); --batch is the\n"
            "                 global batch, each rank takes batch / N of it\n"
            "  --save         write a checkpoint (model, optimizers, generator, step; safetensors)\n"
            "                 there at the end and every --save-every steps (default: at the end)\n"
            "  --resume       go on from a checkpoint of a run with the same settings\n"
            "  --stop-at      stop after this step, as a time limit would (the schedule still\n"
            "                 spans --steps); with --save, --resume goes on from there\n");
}

static options parse(int argc, char **argv) {
    bool cuda = nb_cuda_available();
    options o = {.device = cuda ? nb_cuda(0) : nb_cpu(), .arch = "gpt2", .layers = 4, .heads = 4,
                 .eval_every = 100, .top_k = 40, .dim = 256, .context = 128, .batch = 16, .steps = 600,
                 .sample = 300, .lr = 1e-3, .temperature = 0.8, .peak_tflops = 989,
                 .dtype = cuda ? NB_BF16 : NB_F32, .seed = 1};
    bool dtype_given = false, dangling = false;
    for (int i = 1; i < argc; i += 2) {
        const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(arg, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(arg, "--distributed")) { /* a flag: no value */
            o.distributed = true;
            i--;
            continue;
        }
        bool known = value != NULL;
        if (!known) {
            dangling = true;
            break;
        }
        if (!strcmp(arg, "--device") && (!strcmp(value, "cpu") || !strcmp(value, "cuda")))
            o.device = !strcmp(value, "cuda") ? nb_cuda(0) : nb_cpu();
        else if (!strcmp(arg, "--text")) o.text = value;
        else if (!strcmp(arg, "--arch") && (!strcmp(value, "gpt2") || !strcmp(value, "llama"))) o.arch = value;
        else if (!strcmp(arg, "--layers")) o.layers = atoi(value);
        else if (!strcmp(arg, "--dim")) o.dim = atoll(value);
        else if (!strcmp(arg, "--heads")) o.heads = atoi(value);
        else if (!strcmp(arg, "--kv-heads")) o.kv_heads = atoi(value);
        else if (!strcmp(arg, "--context")) o.context = atoll(value);
        else if (!strcmp(arg, "--batch")) o.batch = atoll(value);
        else if (!strcmp(arg, "--steps")) o.steps = atoll(value);
        else if (!strcmp(arg, "--lr")) o.lr = atof(value);
        else if (!strcmp(arg, "--eval-every")) o.eval_every = atoi(value);
        else if (!strcmp(arg, "--sample")) o.sample = atoll(value);
        else if (!strcmp(arg, "--temperature")) o.temperature = atof(value);
        else if (!strcmp(arg, "--top-k")) o.top_k = atoi(value);
        else if (!strcmp(arg, "--seed")) o.seed = strtoull(value, NULL, 10);
        else if (!strcmp(arg, "--peak-tflops")) o.peak_tflops = atof(value);
        else if (!strcmp(arg, "--save")) o.save = value;
        else if (!strcmp(arg, "--save-every")) o.save_every = atoll(value);
        else if (!strcmp(arg, "--resume")) o.resume = value;
        else if (!strcmp(arg, "--stop-at")) o.stop_at = atoll(value);
        else if (!strcmp(arg, "--dtype") && (!strcmp(value, "f32") || !strcmp(value, "bf16")))
            o.dtype = !strcmp(value, "bf16") ? NB_BF16 : NB_F32, dtype_given = true;
        else known = false;
        if (!known) {
            fprintf(stderr, "train_gpt: bad argument %s %s\n", arg, value);
            usage(stderr);
            exit(2);
        }
    }
    if (!dtype_given) o.dtype = o.device.type == NB_DEVICE_CUDA ? NB_BF16 : NB_F32;
    if (o.stop_at == 0 || o.stop_at > o.steps) o.stop_at = o.steps;
    if (dangling || o.layers < 1 || o.dim < 1 || o.heads < 1 || o.context < 2 || o.batch < 1 ||
        o.steps < 1 || !(o.lr > 0) || o.eval_every < 1 || o.sample < 0 || !(o.temperature > 0) ||
        o.top_k < 1 || o.save_every < 0 || o.stop_at < 0) {
        usage(stderr);
        exit(2);
    }
    return o;
}

/* The bytes of the text: the file, or bible's output. */
static unsigned char *read_text(const options *o, int64_t *size) {
    const char *path = o->text ? o->text : getenv("NABLA_TEXT");
    FILE *in = path && *path ? fopen(path, "rb") : popen("bible gen1:1-rev22:21", "r");
    if (!in) {
        fprintf(stderr, "train_gpt: cannot read %s\n", path && *path ? path : "the output of bible "
                "(install Debian's bible-kjv or pass --text)");
        exit(1);
    }
    size_t capacity = 1 << 20, used = 0, got;
    unsigned char *bytes = malloc(capacity);
    while (bytes && (got = fread(bytes + used, 1, capacity - used, in)) > 0) {
        used += got;
        unsigned char *grown = used == capacity ? realloc(bytes, capacity *= 2) : bytes;
        if (!grown) free(bytes);
        bytes = grown;
    }
    if (path && *path) fclose(in);
    else pclose(in);
    if (!bytes) {
        fprintf(stderr, "train_gpt: out of host memory reading the text\n");
        exit(1);
    }
    if (used < 1000) {
        fprintf(stderr, "train_gpt: the text has %zu bytes; it needs at least 1000\n", used);
        exit(1);
    }
    *size = (int64_t)used;
    return bytes;
}

/* -sum p log p of the byte frequencies, in nats. */
static double unigram_entropy(const unsigned char *bytes, int64_t n) {
    double counts[VOCAB] = {0}, h = 0;
    for (int64_t i = 0; i < n; i++) counts[bytes[i]]++;
    for (int b = 0; b < VOCAB; b++)
        if (counts[b] > 0) h -= counts[b] / (double)n * log(counts[b] / (double)n);
    return h;
}

/* batch windows of context + 1 bytes at the given starts: inputs and the
 * next-byte targets, as i64 tensors on the device. */
static void make_batch(const unsigned char *bytes, const int64_t *starts, int64_t batch,
                       int64_t context, nb_device device, nb_tensor **x, nb_tensor **y) {
    int64_t *host = malloc(sizeof(int64_t) * (size_t)(2 * batch * context));
    CHECK(host);
    for (int64_t b = 0; b < batch; b++)
        for (int64_t t = 0; t < context; t++) {
            host[b * context + t] = bytes[starts[b] + t];
            host[(batch + b) * context + t] = bytes[starts[b] + t + 1];
        }
    int64_t shape[2] = {batch, context};
    *x = nb_from_host(host, 2, shape, NB_I64, device);
    *y = nb_from_host(host + batch * context, 2, shape, NB_I64, device);
    CHECK(*x && *y);
    free(host);
}

/* Random window starts in [lo, hi - context - 1], drawn from gen. */
static void random_starts(nb_generator *gen, int64_t lo, int64_t hi, int64_t context, int64_t batch,
                          int64_t *starts) {
    nb_tensor *draw = nb_randint(lo, hi - context - 1, 1, &batch, NB_I64, nb_cpu(), gen);
    CHECK(draw && nb_to_host(draw, starts, sizeof(int64_t) * (size_t)batch) == NB_OK);
    nb_release(draw);
}

static double item(nb_tensor *t) {
    double value;
    CHECK(t && nb_item(t, &value) == NB_OK);
    return value;
}

/* The mean loss over evenly spaced windows of the held-out tail. */
static double validation_loss(nb_module *gpt, const unsigned char *bytes, int64_t from, int64_t to,
                              const options *o) {
    nb_module_train(gpt, false);
    bool was = nb_set_grad_enabled(false);
    int64_t windows = (to - from - 1) / o->context, batches = windows / o->batch;
    batches = batches > 8 ? 8 : batches < 1 ? 1 : batches;
    int64_t batch = windows < o->batch ? (windows > 0 ? windows : 1) : o->batch;
    int64_t *starts = malloc(sizeof(int64_t) * (size_t)batch);
    double total = 0;
    for (int64_t k = 0; k < batches; k++) {
        for (int64_t b = 0; b < batch; b++) starts[b] = from + ((k * batch + b) * o->context) % (to - from - o->context - 1);
        nb_tensor *x, *y;
        make_batch(bytes, starts, batch, o->context, o->device, &x, &y);
        nb_tensor *loss = nb_gpt_loss(gpt, x, y);
        total += item(loss);
        nb_release(loss);
        nb_release(x);
        nb_release(y);
    }
    free(starts);
    nb_set_grad_enabled(was);
    nb_module_train(gpt, true);
    return total / (double)batches;
}

/* Samples the next byte from logits [V] (host, f64) with temperature and top-k. */
static int sample_byte(double *logits, const options *o, nb_generator *gen) {
    double sorted[VOCAB];
    memcpy(sorted, logits, sizeof sorted);
    for (int i = 0; i < o->top_k && i < VOCAB; i++) /* partial selection: the k largest first */
        for (int j = i + 1; j < VOCAB; j++)
            if (sorted[j] > sorted[i]) {
                double t = sorted[i];
                sorted[i] = sorted[j];
                sorted[j] = t;
            }
    double cut = sorted[(o->top_k < VOCAB ? o->top_k : VOCAB) - 1], top = sorted[0], sum = 0;
    for (int b = 0; b < VOCAB; b++) sum += logits[b] = logits[b] >= cut ? exp((logits[b] - top) / o->temperature) : 0;
    nb_tensor *u = nb_uniform(0, NULL, 0, sum, NB_F64, nb_cpu(), gen);
    double r = item(u);
    nb_release(u);
    for (int b = 0; b < VOCAB; b++)
        if ((r -= logits[b]) < 0) return b;
    return VOCAB - 1;
}

/* Continues prompt with o->sample bytes through the KV cache. */
static void generate(nb_module *gpt, const char *prompt, const options *o, nb_generator *gen) {
    nb_module_train(gpt, false);
    bool was = nb_set_grad_enabled(false);
    CHECK(nb_module_set_kv_cache(gpt, 1, o->context) == NB_OK);
    int64_t n = (int64_t)strlen(prompt), keep = n < o->context ? n : o->context, shape[2] = {1, keep};
    int64_t tokens[VOCAB];
    for (int64_t i = 0; i < keep; i++) tokens[i] = (unsigned char)prompt[n - keep + i];
    printf("--- sample (temperature %.2f, top-k %d) ---\n%s", o->temperature, o->top_k, prompt);
    for (int64_t produced = 0, used = 0; produced < o->sample; produced++) {
        if (used + shape[1] > o->context) { /* the window is full: start over from the last byte */
            CHECK(nb_module_set_kv_cache(gpt, 1, o->context) == NB_OK);
            used = 0;
        }
        nb_tensor *x = nb_from_host(tokens, 2, shape, NB_I64, o->device);
        nb_tensor *logits = x ? nb_module_forward(gpt, x) : NULL;
        nb_tensor *last = logits ? nb_slice(logits, 1, shape[1] - 1, shape[1], 1) : NULL;
        nb_tensor *wide = last ? nb_cast(last, NB_F64) : NULL;
        double values[VOCAB];
        CHECK(wide && nb_to_host(wide, values, sizeof values) == NB_OK);
        used += shape[1];
        int next = sample_byte(values, o, gen);
        putchar(next);
        tokens[0] = next;
        shape[1] = 1;
        nb_tensor *temps[] = {x, logits, last, wide};
        for (size_t i = 0; i < 4; i++) nb_release(temps[i]);
    }
    printf("\n---\n");
    CHECK(nb_module_set_kv_cache(gpt, 1, 0) == NB_OK);
    nb_set_grad_enabled(was);
}

static nb_gpt_config model_config(const options *o) {
    bool llama = !strcmp(o->arch, "llama");
    nb_gpt_config c = {0};
    c.vocab = VOCAB;
    c.context = o->context;
    c.layers = o->layers;
    c.block.attention = (nb_attention_config){o->dim, o->heads, o->kv_heads, true, !llama, llama, 0, 0};
    c.block.rms_norm = llama;
    c.block.swiglu = llama;
    c.tied = !llama;
    return c;
}

int main(int argc, char **argv) {
    options o = parse(argc, argv);
    int rank = 0, world = 1;
    nb_comm *comm = o.distributed ? example_distributed(o.device, o.batch, &rank, &world) : NULL;
    char device_name[16];
    nb_device_str(o.device, device_name, sizeof device_name);
    int64_t size;
    unsigned char *bytes = read_text(&o, &size);
    int64_t split = size - size / 20; /* the last 5% is held out */
    if (split - o.context - 1 <= 0 || size - split <= o.context + 1) {
        fprintf(stderr, "train_gpt: %lld bytes of text are too few for context %lld\n",
                (long long)size, (long long)o.context);
        return 1;
    }
    nb_generator *gen = nb_generator_create(o.seed);
    nb_gpt_config config = model_config(&o);
    nb_module *gpt = nb_nn_gpt(&config, o.dtype, o.device, gen);
    CHECK(gpt);
    nb_ddp *ddp = NULL;
    if (comm) CHECK(nb_ddp_create(gpt, comm, NULL, &ddp) == NB_OK);
    /* AdamW with decay on the matrices, none on gains, biases and positions of norms */
    int n = nb_module_parameters(gpt, NULL, 0);
    nb_named_tensor *named = malloc(sizeof *named * (size_t)n);
    nb_tensor **all = malloc(sizeof *all * (size_t)n * 3), **matrices = all + n, **vectors = all + 2 * n;
    if (!named || !all) {
        fprintf(stderr, "train_gpt: out of host memory listing %d parameters\n", n);
        return 1;
    }
    nb_module_parameters(gpt, named, n);
    int n_matrices = 0, n_vectors = 0;
    int64_t count = 0;
    for (int i = 0; i < n; i++) {
        all[i] = named[i].tensor;
        count += nb_numel(all[i]);
        if (nb_ndim(all[i]) == 2) matrices[n_matrices++] = all[i];
        else vectors[n_vectors++] = all[i];
    }
    nb_optimizer *decayed = nb_adamw_create(matrices, n_matrices, o.lr, 0.9, 0.95, 1e-8, 0.1);
    nb_optimizer *plain = n_vectors ? nb_adamw_create(vectors, n_vectors, o.lr, 0.9, 0.95, 1e-8, 0) : NULL;
    CHECK(decayed && (plain || !n_vectors));
    double entropy = unigram_entropy(bytes, split);
    /* model FLOPs per token: 6 per parameter (forward and backward) plus
     * attention's 12 L T d (Chowdhery et al., PaLM, appendix B) */
    double flops_per_token = 6.0 * (double)count + 12.0 * o.layers * (double)o.context * (double)o.dim;
    printf("train_gpt: %s, %lld parameters (%d layers, %lld wide, %d heads), %lld bytes of text "
           "(%lld held out), context %lld, batch %lld, %lld steps, %s on %s\n",
           o.arch, (long long)count, o.layers, (long long)o.dim, o.heads, (long long)size,
           (long long)(size - split), (long long)o.context, (long long)o.batch, (long long)o.steps,
           nb_dtype_name(o.dtype), device_name);
    if (comm) printf("data parallel over %d ranks, %lld sequences each\n", world, (long long)(o.batch / world));
    printf("unigram entropy of the training bytes: %.4f nats\n", entropy);
    bool tty = isatty(fileno(stdout));
    int64_t *starts = malloc(sizeof(int64_t) * (size_t)o.batch);
    CHECK(starts);
    nb_optimizer *optimizers[2] = {decayed, plain};
    example_state state = {.model = gpt, .optimizers = optimizers, .n_optimizers = plain ? 2 : 1,
                           .generators = &gen, .n_generators = 1};
    int64_t first = example_resume(o.resume, &state);
    double start = now_s(), tokens = 0, last_loss = 0, val = NAN;
    for (int64_t step = first; step < o.stop_at; step++) {
        double lr = nb_lr_warmup_cosine(step, o.steps / 20 + 1, o.steps, o.lr, o.lr / 10);
        nb_optimizer_set_lr(decayed, lr);
        if (plain) nb_optimizer_set_lr(plain, lr);
        random_starts(gen, 0, split, o.context, o.batch, starts); /* the global batch, alike on every rank */
        int64_t local = o.batch / world;
        nb_tensor *x, *y;
        make_batch(bytes, starts + rank * local, local, o.context, o.device, &x, &y);
        nb_optimizer_zero_grad(decayed);
        if (plain) nb_optimizer_zero_grad(plain);
        nb_tensor *loss = nb_gpt_loss(gpt, x, y);
        CHECK(loss && (ddp ? nb_ddp_backward(ddp, loss, NULL) : nb_backward(loss, NULL, false)) == NB_OK);
        nb_tensor *norm = nb_clip_grad_norm(all, n, 1.0);
        CHECK(norm && nb_optimizer_step(decayed) == NB_OK && (!plain || nb_optimizer_step(plain) == NB_OK));
        tokens += (double)(o.batch * o.context); /* the global batch's */
        bool report = step % 10 == 0 || step + 1 == o.stop_at;
        if (report) last_loss = item(loss); /* waits for the device */
        if (report && comm) { /* the global batch's loss: the ranks' average */
            nb_tensor *mean = nb_full(0, NULL, last_loss, NB_F64, nb_cpu());
            CHECK(mean && nb_dist_all_reduce(comm, mean, mean, NB_REDUCE_AVG, NULL) == NB_OK);
            last_loss = item(mean);
            nb_release(mean);
        }
        if ((step + 1) % o.eval_every == 0 || step + 1 == o.stop_at) {
            double seconds = now_s() - start;
            val = validation_loss(gpt, bytes, split, size, &o);
            printf("%sstep %lld: train loss %.4f, val loss %.4f (unigram entropy %.4f), %.0f tokens/s\n",
                   tty ? "\n" : "", (long long)step + 1, last_loss, val, entropy, tokens / seconds);
            start += now_s() - start - seconds; /* validation time is not training time */
        } else if (report) {
            double seconds = now_s() - start, rate = tokens / seconds;
            printf(tty ? "\rstep %lld/%lld  loss %.4f  lr %.2e  %.0f tokens/s   "
                       : "step %lld/%lld  loss %.4f  lr %.2e  %.0f tokens/s\n",
                   (long long)step + 1, (long long)o.steps, last_loss, lr, rate);
            fflush(stdout);
        }
        if (o.save && ((o.save_every && (step + 1) % o.save_every == 0) || step + 1 == o.stop_at))
            example_save(o.save, &state, step + 1, rank);
        nb_release(x);
        nb_release(y);
        nb_release(loss);
        nb_release(norm);
    }
    double seconds = now_s() - start, rate = tokens / seconds;
    printf("done: %.1f s, %.0f tokens/s, %.3g model TFLOP/s", seconds, rate, rate * flops_per_token / 1e12);
    if (o.device.type == NB_DEVICE_CUDA)
        printf(", MFU %.1f%% of %.0f TFLOP/s", 100 * rate * flops_per_token / (o.peak_tflops * 1e12), o.peak_tflops);
    printf("; final val loss %.4f vs unigram entropy %.4f nats\n", val, entropy);
    if (o.sample > 0 && rank == 0) generate(gpt, "And God said", &o, gen);
    free(starts);
    free(bytes);
    free(named);
    free(all);
    nb_optimizer_free(decayed);
    nb_optimizer_free(plain);
    nb_ddp_free(ddp);
    nb_module_free(gpt);
    nb_dist_free(comm);
    nb_generator_free(gen);
    return 0;
}
