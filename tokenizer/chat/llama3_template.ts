/**
 * The chat format of Meta's Llama 3 instruct models, for checkpoints that come without a
 * template (Meta's own `consolidated.pth` releases): each turn is a role header, a blank line,
 * the trimmed content and `<|eot_id|>`, after one BOS.
 *
 * @module
 */

/** Llama 3's chat format as a Jinja template. */
export const LLAMA3_CHAT_TEMPLATE: string = [
  "{%- for message in messages %}",
  "{%- if loop.first %}{{ bos_token }}{% endif %}",
  "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}",
  "{{- message['content'] | trim }}",
  "{{- '<|eot_id|>' }}",
  "{%- endfor %}",
  "{%- if add_generation_prompt %}",
  "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}",
  "{%- endif %}",
].join("\n");
