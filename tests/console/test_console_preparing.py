"""The console on a fresh home's first run: the model's page and the list say "preparing base
model (first run, once)" with its own progress in the bar, then count the steps."""

from __future__ import annotations

import tunesmith as ts

PREPARING = "preparing base model (first run, once)"


def test_the_model_page_shows_the_preparation_then_steps(
    browser, preparing_server, held_conversion, artifacts
):
    ts.configure(api_endpoint=preparing_server)
    data = [{"text_input": str(i), "output": str(i + 1)} for i in range(4)]
    op = ts.create_tuned_model("models/text-bison-001", data, id="first-run", batch_size=2,
                               epoch_count=1)  # fmt: skip
    assert held_conversion.reached.wait(120)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(preparing_server + "/#/models/first-run")
        text = page.locator(".status .progress-text")
        page.wait_for_function(
            "t => document.querySelector('.status .progress-text')?.textContent.match(/ [1-9]\\d?%$/)",
            arg=None,
        )
        assert text.inner_text().startswith(PREPARING)
        width = page.eval_on_selector(".status .progress-fill", "e => parseFloat(e.style.width)")
        assert 0 < width < 100  # the bar fills with the preparation's own progress
        page.screenshot(path=artifacts / "console-model-preparing.png", full_page=True)
        page.goto(preparing_server + "/#/")
        row = page.locator("tr[data-model=first-run] .progress-text")
        row.wait_for()
        assert row.inner_text().startswith(PREPARING)

        held_conversion.release()
        op.result(timeout=120)
        page.goto(preparing_server + "/#/models/first-run")
        page.wait_for_selector(".badge.active")
        assert text.inner_text() == "2/2 steps"
    finally:
        context.close()
    assert not errors, errors
