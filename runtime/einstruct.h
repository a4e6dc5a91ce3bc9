/* einstruct runtime: the C ABI.
 *
 * A layer is compiled once from a spec (the JSON object of an examples/ file,
 * e.g. {"structure": "monarch(8)", "d_in": 64, "d_out": 64}) and then called
 * many times. Arrays are float32, row-major (C order): x is [batch, d_in], y
 * is [batch, d_out], weights are in the layouts of structures.md with size-1
 * axes dropped (einstruct_layer_weight_shape). Every call returns
 * EINSTRUCT_OK or a negative status; einstruct_last_error() then says why
 * (per thread). Nothing here aborts on bad input. Use a layer from one
 * thread at a time (concurrent calls are not tested yet).
 *
 * A spec with "bias": true has one more weight, last: the bias [d_out]
 * added to y (zero-initialised; its gradient is the column sums of dy).
 *
 * BTT-MoE layers (structures.md §3) run routed: only each token's top-k
 * experts are computed. Their weights are W1, W2 and then the router Wg
 * [d_in, experts] (zero-initialised by einstruct_layer_init_weights); the
 * backward pass differentiates <dy, y> + aux_weight · aux_loss (aux_weight
 * 0.01 unless set) and writes dWg last. Top-k ties go to the lower expert
 * index; gates are the softmax of the selected logits + 1e-6.
 *
 * CUDA layers (einstruct_layer_create_cuda, below) take device arrays in
 * their dtype through einstruct_layer_forward_stream / _backward_stream. */
#ifndef EINSTRUCT_H
#define EINSTRUCT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EINSTRUCT_API __attribute__((visibility("default")))

enum {
  EINSTRUCT_OK = 0,
  EINSTRUCT_ERR_SPEC = -1,     /* the spec does not parse or is not valid */
  EINSTRUCT_ERR_COMPILE = -2,  /* lowering or JIT compilation failed */
  EINSTRUCT_ERR_ARGUMENT = -3, /* null pointer, bad batch or index */
  EINSTRUCT_ERR_DEVICE = -4    /* the requested device is not available */
};

typedef struct einstruct_layer einstruct_layer;

/* Compiles `spec_json` for this CPU (MLIR pipeline + LLVM JIT, forward and
 * backward). On success *out owns the layer. */
EINSTRUCT_API int einstruct_layer_create_cpu(const char *spec_json,
                                             einstruct_layer **out);
EINSTRUCT_API void einstruct_layer_destroy(einstruct_layer *layer);

EINSTRUCT_API int64_t einstruct_layer_d_in(const einstruct_layer *layer);
EINSTRUCT_API int64_t einstruct_layer_d_out(const einstruct_layer *layer);
EINSTRUCT_API int einstruct_layer_num_weights(const einstruct_layer *layer);
/* Experts of a BTT-MoE layer; 0 for every other layer. */
EINSTRUCT_API int64_t einstruct_layer_experts(const einstruct_layer *layer);
/* Multiply-adds per input row (BTT-MoE: the router and the k active experts). */
EINSTRUCT_API int64_t einstruct_layer_macs(const einstruct_layer *layer);
/* Writes up to max_rank dims of weight k; returns its rank, or a negative
 * status. */
EINSTRUCT_API int einstruct_layer_weight_shape(const einstruct_layer *layer,
                                               int k, int64_t *dims,
                                               int max_rank);

/* Fills weights[k] with the reference initialisation of structures.md §4
 * (normal, std = sqrt(min(fan_in, fan_out) / fan_in²) per core), from `seed`. */
EINSTRUCT_API int einstruct_layer_init_weights(const einstruct_layer *layer,
                                               uint64_t seed,
                                               float *const *weights);

/* y = layer(x). weights[k] points at weight k. */
EINSTRUCT_API int einstruct_layer_forward(const einstruct_layer *layer,
                                          const float *x, int64_t batch,
                                          const float *const *weights,
                                          float *y);
/* Gradients of <dy, layer(x)>: dx [batch, d_in] and dweights[k] (shape of
 * weight k). */
EINSTRUCT_API int einstruct_layer_backward(const einstruct_layer *layer,
                                           const float *x, const float *dy,
                                           int64_t batch,
                                           const float *const *weights,
                                           float *dx, float *const *dweights);

/* Threads a call may use (>= 1; default EINSTRUCT_NUM_THREADS, else all
 * hardware threads). The batch is split into row chunks run at once (each
 * at least 24 rows and ~32M multiply-adds, so small calls use one); y and
 * dx do not depend on it, weight gradients only to rounding. */
EINSTRUCT_API int einstruct_layer_set_threads(einstruct_layer *layer,
                                              int threads);

/* BTT-MoE: the weight of the auxiliary load-balancing loss in backward
 * (finite, >= 0; default 0.01, the reference's). */
EINSTRUCT_API int einstruct_layer_set_aux_weight(einstruct_layer *layer,
                                                 double aux_weight);
/* BTT-MoE: what the last forward or backward call routed: tokens per expert
 * (einstruct_layer_experts values), the aux loss and the mean router entropy
 * (nats). Any output pointer may be null. */
EINSTRUCT_API int einstruct_layer_routing(const einstruct_layer *layer,
                                          int64_t *tokens_per_expert,
                                          double *aux_loss, double *entropy);

/* ---- CUDA layers ----
 * The layer's generated kernels (einstruct compile --target cuda), built by
 * nvcc into a shared library on first use and kept in the cache directory
 * (EINSTRUCT_CACHE_DIR, default ~/.cache/einstruct, under cuda/; "off"
 * builds in /tmp each time). nvcc is EINSTRUCT_NVCC, else nvcc on PATH,
 * else /usr/local/cuda/bin/nvcc; nothing here links against CUDA (the
 * driver, libcuda.so.1, is opened at run time). The first creation of a
 * layer takes nvcc's ~5 s; later ones, in any process, a dlopen.
 * dtype: "f32", "bf16" or "f16" (storage; fp32 accumulation). */
EINSTRUCT_API int einstruct_layer_create_cuda(const char *spec_json,
                                              const char *dtype, int device,
                                              einstruct_layer **out);
/* Builds the library of `spec_json` for `arch` ("sm_80", "sm_90a", or any
 * sm_XY of compute capability 8.0+) into the cache without asking for a
 * device, so einstruct_layer_create_cuda on such a GPU finds it (sm_80 and
 * sm_90a only: other archs are planned with the device's own shared
 * memory). Writes the library's path into path[path_size] when path is
 * not null. */
EINSTRUCT_API int einstruct_cuda_prebuild(const char *spec_json,
                                          const char *dtype, const char *arch,
                                          char *path, size_t path_size);

/* -1 for a CPU layer, else its CUDA device. */
EINSTRUCT_API int einstruct_layer_device(const einstruct_layer *layer);
/* "f32", "bf16" or "f16": the element type of every array of a call
 * (CPU layers: "f32"). */
EINSTRUCT_API const char *einstruct_layer_dtype(const einstruct_layer *layer);

/* Forward and backward for any layer: arrays in the layer's dtype and
 * memory (CUDA: device pointers of its device, 16-byte aligned, checked;
 * host pointers are refused), weights as einstruct_layer_weight_shape says.
 * CUDA layers run asynchronously on `stream` (a cudaStream_t; NULL = the
 * legacy default stream) and allocate their scratch memory in stream order;
 * CPU layers run at once and take stream = NULL. einstruct_layer_forward and
 * _backward on a CUDA layer are these on the default stream, waited for,
 * and take f32 layers only. BTT-MoE backward on CUDA runs the forward pass
 * again first (it needs the routing). */
EINSTRUCT_API int einstruct_layer_forward_stream(const einstruct_layer *layer,
                                                 const void *x, int64_t batch,
                                                 const void *const *weights,
                                                 void *y, void *stream);
EINSTRUCT_API int einstruct_layer_backward_stream(
    const einstruct_layer *layer, const void *x, const void *dy, int64_t batch,
    const void *const *weights, void *dx, void *const *dweights, void *stream);

/* BTT-MoE on CUDA: whether calls gather the routing statistics for
 * einstruct_layer_routing (they then wait for the stream; default off).
 * CPU layers always gather them. */
EINSTRUCT_API int einstruct_layer_set_routing_stats(einstruct_layer *layer,
                                                    int on);

/* ---- Sequence mixers (structures.md §7) ----
 * A mixer mixes along the sequence axis, per head or channel. `spec` names
 * it as `einstruct analyze --mixer` does: "ssd(heads=12, head_dim=64,
 * state=64, chunk=64)" (Mamba-2's chunked SSD), "hydra(...)" (Hydra's
 * quasiseparable mixer, two SSD passes), the chunk chosen by MACs when not
 * given; "m2-conv(causal=true)" (M2's long convolution, Monarch-factored
 * DFTs) or "monarch-seq(blocks=64)" (fly's Monarch matrix along the
 * sequence). It is compiled for sequences of seq_len tokens of d_model
 * channels (0 for ssd and hydra: heads · head_dim) from the dialect, its
 * backward from --einstruct-autodiff, through the CPU pipeline and JIT; a
 * call takes `batch` sequences. Operands are float32, row-major, in the
 * order and shapes einstruct_mixer_operand gives: [batch, shape...] for a
 * per-sequence operand, shape alone for a parameter shared by the batch
 * (einstruct_mixer_operand_per_sequence). As Mamba-2's
 * mamba_chunk_scan_combined takes them (dt after its softplus, a = dt·A):
 * ssd x [L, H, P], dt and a [L, H], B and C [L, N] (one group), y = SSD(x ⊙
 * dt, a, B, C); hydra x [L, H, P], dt and a [L, 2, H], B and C [L, 2, N]
 * (the forward pass's, then the flipped backward pass's, as the
 * reference's dt and BC halves) and d [L, H] (the skip's scale, fc_D(x) + D
 * in the reference); y is [batch, L, H, P]. m2-conv x [L, C] and, shared, k
 * [L, C] (k_rev [L, C] too when causal=false) and D [C]: y_i = Σ_{j<=i}
 * k_{i-j} x_j (+ Σ_{j>i} k_rev_{j-i-1} x_j) + D x_i per channel, M2's
 * fftconv_ref. monarch-seq x [L, C] and, shared, w1 and w2 [blocks, L /
 * blocks, L / blocks] (fly's w1_bfly, w2_bfly): each channel's column
 * times fly's Monarch matrix. Their y is [batch, L, C]. A whole block,
 * "hydra-block(state, conv, expand, head_dim, chunk)" (goombalab/hydra's
 * block on d_model channels: projections, convolution, the mixer, gated
 * norm), takes x [L, d_model] and, shared, its parameters named
 * as blocks.Hydra's state_dict ("in_proj.weight", ..., "out_proj.weight");
 * y is [batch, L, d_model]. */
typedef struct einstruct_mixer einstruct_mixer;
EINSTRUCT_API int einstruct_mixer_create_cpu(const char *spec, int64_t seq_len,
                                             int64_t d_model,
                                             einstruct_mixer **out);
/* The same mixer on CUDA device `device`: the libraries `einstruct compile
 * --mixer` writes (its IR and derived backward as chains of kernels and
 * cuBLAS calls, float32), built by nvcc on first use and cached as CUDA
 * layers are; m2-conv's and m2-block's constants are copied to the
 * device on the first call. Operands as above, in device memory of that
 * device. */
EINSTRUCT_API int einstruct_mixer_create_cuda(const char *spec, int64_t seq_len,
                                              int64_t d_model, int device,
                                              einstruct_mixer **out);
EINSTRUCT_API void einstruct_mixer_destroy(einstruct_mixer *mixer);
/* -1 for a CPU mixer, else its CUDA device. */
EINSTRUCT_API int einstruct_mixer_device(const einstruct_mixer *mixer);
EINSTRUCT_API int einstruct_mixer_num_operands(const einstruct_mixer *mixer);
/* Operand k's name ("x", "dt", "a", "B", "C", "d", "k", "k_rev", "D",
 * "w1", "w2"; owned by the mixer) into *name when not null, and up to
 * max_rank of its dims (per sequence, or the parameter's); returns its
 * rank, or a negative status. */
EINSTRUCT_API int einstruct_mixer_operand(const einstruct_mixer *mixer, int k,
                                          const char **name, int64_t *dims,
                                          int max_rank);
/* 1 when operand k holds one array per sequence ([batch, dims...]), 0 when
 * it is a parameter shared by the batch (its gradient summed over it), or
 * a negative status. */
EINSTRUCT_API int
einstruct_mixer_operand_per_sequence(const einstruct_mixer *mixer, int k);
/* Multiply-adds per sequence (analyze --mixer's count). */
EINSTRUCT_API int64_t einstruct_mixer_macs(const einstruct_mixer *mixer);
/* y = mixer(operands...); operands[k] points at operand k. */
EINSTRUCT_API int einstruct_mixer_forward(const einstruct_mixer *mixer,
                                          const float *const *operands,
                                          int64_t batch, float *y);
/* The gradients of <dy, y> with respect to every operand, grads[k] shaped
 * like operand k. A CPU mixer compiles its backward on the first call: a
 * forward-only user never pays for it. */
EINSTRUCT_API int einstruct_mixer_backward(const einstruct_mixer *mixer,
                                           const float *const *operands,
                                           const float *dy, int64_t batch,
                                           float *const *grads);
/* Either on `stream`: a CUDA mixer runs asynchronously there (a
 * cudaStream_t; NULL = the legacy default stream), its scratch allocated in
 * stream order; a CPU mixer runs at once and takes stream = NULL.
 * einstruct_mixer_forward and _backward on a CUDA mixer are these on the
 * default stream, waited for. */
EINSTRUCT_API int einstruct_mixer_forward_stream(const einstruct_mixer *mixer,
                                                 const void *const *operands,
                                                 int64_t batch, void *y,
                                                 void *stream);
EINSTRUCT_API int einstruct_mixer_backward_stream(const einstruct_mixer *mixer,
                                                  const void *const *operands,
                                                  const void *dy, int64_t batch,
                                                  void *const *grads,
                                                  void *stream);
/* Training's pair: the forward keeping what its backward reads (an ssd,
 * hydra or block's residuals, the forward values from which the backward
 * recomputes the rest cheaply instead of running the forward again: 33 MB
 * per sequence for Hydra's block at L = 1024, d_model 768), and the
 * backward from them. forward_saving is forward_stream with
 * the residuals in a new *saved; backward_saved is backward_stream on the
 * same mixer, operands and batch from them (any number of times). A CUDA
 * mixer keeps its residuals in device memory allocated and freed in stream
 * order on the forward's stream; m2-conv and monarch-seq keep nothing:
 * their backward recomputes. Destroy *saved when the backward is done,
 * before the mixer. */
typedef struct einstruct_mixer_saved einstruct_mixer_saved;
EINSTRUCT_API int einstruct_mixer_forward_saving(const einstruct_mixer *mixer,
                                                 const void *const *operands,
                                                 int64_t batch, void *y,
                                                 void *stream,
                                                 einstruct_mixer_saved **saved);
EINSTRUCT_API int
einstruct_mixer_backward_saved(const einstruct_mixer *mixer,
                               const einstruct_mixer_saved *saved,
                               const void *const *operands, const void *dy,
                               int64_t batch, void *const *grads, void *stream);
EINSTRUCT_API void einstruct_mixer_saved_destroy(einstruct_mixer_saved *saved);
/* Threads a call may use (>= 1; default as layers): sequences (or blocks
 * of channels) are split between them, so results do not depend on it. A
 * CUDA mixer accepts and ignores it. */
EINSTRUCT_API int einstruct_mixer_set_threads(einstruct_mixer *mixer,
                                              int threads);

/* ---- Analysis, search and projection (JSON in, JSON out) ----
 * *out_json receives a NUL-terminated string the caller releases with
 * einstruct_free (NULL after a failure). */

/* A spec or an array of specs (as in examples/): an array of the objects
 * `einstruct analyze --json` prints. */
EINSTRUCT_API int einstruct_analyze(const char *spec_json, char **out_json);
/* A sweep config (as in examples/sweep/: shapes, budgets, objectives, ...):
 * an array of its rows, as `einstruct sweep` writes them (each with its
 * ranked "top" candidates and Pareto "front"). */
EINSTRUCT_API int einstruct_search(const char *sweep_json, char **out_json);
/* A model (examples/gpt2_small.json: layers and a budget): one structure per
 * layer under the total MAC budget, as `einstruct search --model --json`. */
EINSTRUCT_API int einstruct_search_model(const char *model_json,
                                         char **out_json);
/* The weights of `spec_json`'s layer nearest, in the Frobenius norm, to the
 * dense [d_out, d_in] matrix `dense` (torch.nn.Linear.weight): written to
 * weights[k] (einstruct_layer_weight_shape's shapes); the relative error
 * ||W - M|| / ||W|| into *relative_error when not null. Not for BTT-MoE. */
EINSTRUCT_API int einstruct_project(const char *spec_json, const float *dense,
                                    float *const *weights,
                                    double *relative_error);
/* A checkpoint of the public code's layers (`source`: "fly", "m2" or
 * "einsum-search"; a .safetensors file) read as einstruct layers: writes
 * into the existing directory out_dir what `einstruct import` writes (per
 * layer STEM.json and STEM.safetensors, and manifest.json), and puts
 * manifest.json's text in *manifest_json. options_json may be NULL or an
 * object with "layer" (one module path), "d_in", "d_out" (fly's unpadded
 * features), "top_k" (BTT-MoE, default 2), and for einsum-search's generic
 * θ layers "theta" (with d_in, d_out) and "normalized". */
EINSTRUCT_API int einstruct_import(const char *checkpoint, const char *source,
                                   const char *options_json,
                                   const char *out_dir, char **manifest_json);
EINSTRUCT_API void einstruct_free(char *p);

/* The message of this thread's last failed call ("" if none). */
EINSTRUCT_API const char *einstruct_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
