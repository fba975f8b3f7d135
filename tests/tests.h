/* Every test, in the order the runner calls them. */
#ifndef LLAMAC_TESTS_TESTS_H
#define LLAMAC_TESTS_TESTS_H

#include "harness.h"

#define TEST_LIST                                                                                  \
    X(test_tokenizer_spm_cases)                                                                    \
    X(test_tokenizer_known_ids)                                                                    \
    X(test_tokenizer_round_trip)                                                                   \
    X(test_tokenizer_invalid_utf8)                                                                 \
    X(test_tokenizer_decode_bytes)                                                                 \
    X(test_tokenizer_long_prompt)                                                                  \
    X(test_tokenizer_bad_files)                                                                    \
    X(test_tokenizer_gguf_vocab)                                                                   \
    X(test_bpe_tiktoken_fixture)                                                                   \
    X(test_bpe_json_matches_tiktoken)                                                              \
    X(test_bpe_golden_sequences)                                                                   \
    X(test_bpe_gguf_vocab)                                                                         \
    X(test_bpe_round_trip)                                                                         \
    X(test_bpe_special_tokens)                                                                     \
    X(test_bpe_invalid_utf8)                                                                       \
    X(test_bpe_long_runs)                                                                          \
    X(test_bpe_directory)                                                                          \
    X(test_bpe_small_json)                                                                         \
    X(test_bpe_bad_files)                                                                          \
    X(test_chat_llama2_template)                                                                   \
    X(test_chat_template_detect)                                                                   \
    X(test_chat_llama3_template)                                                                   \
    X(test_chat_llama3_two_turns)                                                                  \
    X(test_server_parse_requests)                                                                  \
    X(test_server_stop_strings)                                                                    \
    X(test_quant_half_precision)                                                                   \
    X(test_quant_block_layouts)                                                                    \
    X(test_quant_error_bounds)                                                                     \
    X(test_quant_row_bytes)                                                                        \
    X(test_kernels_simd_match_scalar)                                                              \
    X(test_kernels_scalar_gemm)                                                                    \
    X(test_kernels_dtypes_match_reference)                                                         \
    X(test_kernels_runq_block_order)                                                               \
    X(test_kernels_activation_blocks)                                                              \
    X(test_model_bad_files)                                                                        \
    X(test_model_mkmodel_round_trip)                                                               \
    X(test_model_mkmodel_layers_threads)                                                           \
    X(test_model_bytes_per_token)                                                                  \
    X(test_gguf_reads_valid_file)                                                                  \
    X(test_gguf_rejects_malformed)                                                                 \
    X(test_gguf_model_errors_name_the_file)                                                        \
    X(test_gguf_foreign_file)                                                                      \
    X(test_gguf_write_read_round_trip)                                                             \
    X(test_gguf_f32_logits_bit_identical)                                                          \
    X(test_gguf_quantized_within_bounds)                                                           \
    X(test_safetensors_reads_valid_header)                                                         \
    X(test_safetensors_rejects_malformed)                                                          \
    X(test_safetensors_sharded_folder)                                                             \
    X(test_hf_config_errors)                                                                       \
    X(test_hf_special_ids_and_rope_parameters)                                                     \
    X(test_hf_rope_scaling)                                                                        \
    X(test_hf_twins_match_llama2c)                                                                 \
    X(test_hf_half_precision_weights)                                                              \
    X(test_hf_llama3_config)                                                                       \
    X(test_hf_gguf_llama3_bit_identical)                                                           \
    X(test_hf_gguf_llama3_q8_0)                                                                    \
    X(test_hf_gguf_llama3_tokenizer)                                                               \
    X(test_hf_gguf_bad_rope_freqs)                                                                 \
    X(test_hf_gguf_linear_scaling)                                                                 \
    X(test_hf_gguf_stories260k)                                                                    \
    X(test_gguf_vocab_is_llama_cpp_llama2)                                                         \
    X(test_v2_matches_fp32_checkpoint)                                                             \
    X(test_v2_bad_files)                                                                           \
    X(test_sampler_distributions)                                                                  \
    X(test_sampler_greedy_and_seeds)                                                               \
    X(test_sampler_bad_params)                                                                     \
    X(test_sampler_degenerate_inputs)                                                              \
    X(test_shard_plan_tiles)                                                                       \
    X(test_shard_plan_errors)                                                                      \
    X(test_shard_forward_stories260k)                                                              \
    X(test_shard_forward_llama3_hf)                                                                \
    X(test_shard_forward_mkmodel)                                                                  \
    X(test_shard_engine_option)                                                                    \
    X(test_engine_rejects_bad_batches)                                                             \
    X(test_engine_sequences_are_isolated)                                                          \
    X(test_engine_rewind)                                                                          \
    X(test_engine_generation_limits)                                                               \
    X(test_engine_seed_reproducible)                                                               \
    X(test_engine_cpu_sample_equals_host)                                                          \
    X(test_engine_bad_options)                                                                     \
    X(test_engine_long_prompt_batched_equals_stepwise)                                             \
    X(test_logits_stories260k)                                                                     \
    X(test_logits_stories260k_v1)                                                                  \
    X(test_logits_llama2xs)                                                                        \
    X(test_logits_stories260k_hf)                                                                  \
    X(test_logits_llama3_hf)                                                                       \
    X(test_logits_gutenberg15m)                                                                    \
    X(test_logits_gutenberg15m_f16)                                                                \
    X(test_logits_gutenberg15m_bf16)                                                               \
    X(test_logits_gutenberg15m_q8_0)                                                               \
    X(test_logits_gutenberg15m_q4_0)                                                               \
    X(test_perplexity_windows_match_stepwise)                                                      \
    X(test_perplexity_window_bookkeeping)                                                          \
    X(test_perplexity_per_line_matches_stepwise)                                                   \
    X(test_perplexity_kl_divergence)                                                               \
    X(test_cuda_absent_is_an_error)                                                                \
    X(test_cuda_ops)                                                                               \
    X(test_cuda_handoff)                                                                           \
    X(test_cuda_handoff_forward)                                                                   \
    X(test_cuda_qkv_attention)                                                                     \
    X(test_cuda_qkv_attention_trained)                                                             \
    X(test_cuda_logits_golden)                                                                     \
    X(test_cuda_forward_matches_cpu)                                                               \
    X(test_cuda_golden_text)                                                                       \
    X(test_cuda_device_sampling)                                                                   \
    X(test_cuda_sample_rows)                                                                       \
    X(test_cuda_sequences_isolated)                                                                \
    X(test_cuda_fed_steps)                                                                         \
    X(test_cuda_gguf_quantized)                                                                    \
    X(test_cuda_step_kernel)

/* What make test-arm64 runs under qemu: kernels and quantization only, linked
 * without PCRE2 and cJSON (Debian ships no static arm64 builds of them). */
#define TEST_LIST_KERNELS                                                                          \
    X(test_quant_half_precision)                                                                   \
    X(test_quant_block_layouts)                                                                    \
    X(test_quant_error_bounds)                                                                     \
    X(test_quant_row_bytes)                                                                        \
    X(test_kernels_simd_match_scalar)                                                              \
    X(test_kernels_scalar_gemm)                                                                    \
    X(test_kernels_dtypes_match_reference)                                                         \
    X(test_kernels_runq_block_order)                                                               \
    X(test_kernels_activation_blocks)

#define X(name) void name(test_ctx *t);
TEST_LIST
#undef X

#endif
