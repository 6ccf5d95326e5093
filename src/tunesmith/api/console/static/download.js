// The "Download" menu of an ACTIVE tuned model: its exports for other runtimes. The server
// makes each kind once (a GGUF of a small model takes several seconds), then streams it.

import { getFile } from "./api.js";
import { h, toast } from "./dom.js";

const CHOICES = [
  ["GGUF, F16 (llama.cpp, LM Studio)", "format=gguf&quantization=F16"],
  ["GGUF, Q8_0 (half the size)", "format=gguf&quantization=Q8_0"],
  ["GGUF + Ollama Modelfile (.tar)", "format=gguf&archive=true"],
  ["GGUF LoRA adapter + base (.tar)", "format=gguf-lora"],
  ["peft adapter (.tar)", "format=adapter"],
  ["Merged transformers folder (.tar)", "format=merged"],
];

export function downloadMenu(id) {
  const menu = h("details", { class: "menu", id: "download" });

  async function pick(label, query, button) {
    menu.open = false;
    button.disabled = true;
    toast(`Preparing ${label}…`);
    try {
      const { blob, name } = await getFile(`tunedModels/${id}:export?${query}`);
      const url = URL.createObjectURL(blob);
      const link = h("a", { href: url, download: name, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      toast(`Downloaded ${name}`);
    } catch (e) {
      toast(e.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  const items = CHOICES.map(([label, query]) => {
    const button = h("button", { type: "button", class: "ghost", dataset: { export: query } }, label);
    button.addEventListener("click", () => pick(label, query, button));
    return button;
  });
  menu.append(h("summary", { class: "button" }, "Download"), h("div", { class: "menu-items" }, items));
  return menu;
}
