/* A minimal program over the vex C API: one chat turn, the final answer streamed to stdout.
 *   vex_chat_example MODEL_DIR "What is 127 * 89?"
 * Build: cc chat.c -lvex (the project builds it as vex_chat_example). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vex/vex.h>

/* Prints the content of the final channel as it streams. */
static bool on_token(const vex_token_event* ev, void* user_data) {
  (void)user_data;
  if (ev->is_content && strcmp(ev->channel, "final") == 0) {
    fwrite(ev->text, 1, ev->text_len, stdout);
    fflush(stdout);
  }
  return true;
}

static int die(const char* what) {
  fprintf(stderr, "%s: %s\n", what, vex_last_error());
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s MODEL_DIR PROMPT\n", argv[0]);
    return 2;
  }
  vex_model* model = NULL;
  if (vex_model_load(argv[1], NULL, &model) != VEX_STATUS_OK) return die("load");
  vex_context* ctx = NULL;
  if (vex_context_init(model, NULL, &ctx) != VEX_STATUS_OK) return die("context");

  /* Render the conversation: first ask for the size, then fill the buffer. */
  vex_chat_message msg = {"user", NULL, argv[2]};
  size_t n = 0;
  vex_chat_render(model, NULL, &msg, 1, NULL, 0, &n);
  int32_t* prompt = malloc(n * sizeof *prompt);
  if (!prompt || vex_chat_render(model, NULL, &msg, 1, prompt, n, &n) != VEX_STATUS_OK)
    return die("render");

  vex_generate_params gp = vex_generate_default_params(model);
  gp.max_tokens = 256;
  gp.on_token = on_token;
  vex_generate_result result = {.struct_size = sizeof result};
  if (vex_generate(ctx, prompt, n, &gp, &result) != VEX_STATUS_OK) return die("generate");
  fprintf(stderr, "\n%d prompt tokens, %d generated in %.0f ms\n", result.n_prompt,
          result.n_generated, result.generate_ms);

  free(prompt);
  vex_context_free(ctx);
  vex_model_free(model);
  return 0;
}
