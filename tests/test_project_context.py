"""The prompt's project block: the project code a focal function uses, resolved across files, and the
nearest existing test; never the training target as the example; dropped first when the prompt is
too long; off with `project_context = false` and for adapters trained with prompt format 2."""

from __future__ import annotations

import argparse
import textwrap
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from unitune.adapters.card import AdapterCard, BaseModelRef, check_compatible
from unitune.adapters.errors import AdapterMismatchError
from unitune.request import GenerationRequest, PreparedRequest, PromptOptions, fit_prompt, prepare, prompt_options
from unitune.cli_options import setting_overrides
from unitune.focal import functions
from unitune.placement import locate_test_file
from unitune.project_context import gather_project_context
from unitune.prompt import (
    PROMPT_FORMAT_VERSION, SUPPORTED_PROMPT_FORMATS, build_prompt, model_input, training_example,
)
from unitune.settings import COMMAND_LINE, Settings, load_settings
from unitune.source import SourceFile

BLOCK_TITLE = "# Signatures and docstrings of the project code that"

SHOP = {
    "pyproject.toml": '[project]\nname = "shop"\n',
    "src/shop/__init__.py": '"""A tiny shop."""\nfrom .cart import Cart, Item\n',
    "src/shop/cart.py": '''
        """Carts."""
        from dataclasses import dataclass
        from decimal import Decimal


        @dataclass(frozen=True)
        class Item:
            """Something to buy."""

            name: str
            price: Decimal


        class Cart:
            """A shopping cart of one customer.

            SECOND PARAGRAPH of the class docstring.
            """

            def __init__(self, owner: str):
                self.owner = owner
                self._lines = []

            def add(self, item: Item, quantity: int = 1) -> None:
                """Add `quantity` of `item`.

                Raises ValueError for a quantity below one.
                """
                if quantity < 1:
                    raise ValueError("quantity")
                self._lines.append((item, quantity))

            def total(self) -> Decimal:
                """The sum of the prices of all items."""
                return sum((item.price * n for item, n in self._lines), Decimal(0))

            @property
            def size(self) -> int:
                return sum(n for _, n in self._lines)

            def _audit(self):
                """PRIVATE_METHOD_DOC"""
    ''',
    "src/shop/money.py": '''
        """Money helpers."""
        from decimal import ROUND_HALF_UP, Decimal


        def round_cents(value: Decimal) -> Decimal:
            """Round `value` to whole cents, half up.

            SECOND PARAGRAPH of the helper's docstring.
            """
            return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


        def unused_helper(value):
            """UNUSED_HELPER_DOC"""
            return value
    ''',
    "src/shop/pricing.py": '''
        """Prices."""
        import os
        from decimal import Decimal

        from shop import Cart
        from .money import round_cents


        def apply_discount(cart: Cart, percent: int) -> Decimal:
            """The cart's total less `percent` percent, in cents."""
            if not 0 <= percent <= 100:
                raise ValueError("percent")
            os.getenv("SHOP_DEBUG")
            return round_cents(cart.total() * (100 - percent) / 100)


        def shipping(cart):
            return Decimal("4.99") if cart.size < 3 else Decimal(0)


        def gift_wrap(cart):
            return Decimal("2.00")
    ''',
    "tests/test_pricing.py": '''
        from decimal import Decimal

        from shop import Cart, Item
        from shop.pricing import apply_discount, shipping


        def test_shipping_is_free_from_three_items():
            cart = Cart("ann")
            cart.add(Item("pen", Decimal("1.00")), 3)
            assert shipping(cart) == 0


        def test_apply_discount_halves_the_total():
            cart = Cart("ann")
            cart.add(Item("pen", Decimal("3.00")))
            assert apply_discount(cart, 50) == Decimal("1.50")
    ''',
    "tests/test_cart.py": '''
        from decimal import Decimal

        from shop import Cart, Item


        def test_total_of_two_items():
            cart = Cart("bo")
            cart.add(Item("pen", Decimal("1.00")), 2)
            assert cart.total() == Decimal("2.00")
    ''',
}

JAVA_SHOP = {
    "pom.xml": "<project/>\n",
    "src/main/java/com/shop/Cart.java": '''
        package com.shop;

        public class Cart {
            private final Discount discount;

            public Cart(Discount discount) { this.discount = discount; }

            public Money total(int cents) {
                Money money = Money.of(cents);
                return discount.apply(money);
            }
        }
    ''',
    "src/main/java/com/shop/Money.java": '''
        package com.shop;

        public class Money {
            private final int cents;
            private Money(int cents) { this.cents = cents; }
            public static Money of(int cents) { return new Money(cents); }
            public Money plus(Money other) { return new Money(cents + other.cents); }
            private int secretCents() { return cents; }
        }
    ''',
    "src/main/java/com/shop/Discount.java": '''
        package com.shop;

        public interface Discount {
            Money apply(Money price);
        }
    ''',
    "src/main/java/com/shop/Unused.java": '''
        package com.shop;

        public class Unused {
            public void neverCalled() {}
        }
    ''',
    "src/test/java/com/shop/CartTest.java": '''
        package com.shop;

        import org.junit.jupiter.api.Test;
        import static org.junit.jupiter.api.Assertions.*;

        class CartTest {
            @Test
            void totalWithoutDiscount() {
                Cart cart = new Cart(price -> price);
                assertNotNull(cart.total(100));
            }
        }
    ''',
}


def write_project(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), "utf-8")
    return root


@pytest.fixture
def shop(tmp_path) -> Path:
    return write_project(tmp_path / "shop", SHOP)


def focal(root: Path, relative: str, name: str):
    file = SourceFile.from_path(root / relative)
    return file, next(f for f in functions(file) if f.qualified_name == name)


def prompt_for(root: Path, relative: str, name: str, **options):
    file, function = focal(root, relative, name)
    location = locate_test_file(file.path, root)
    project = gather_project_context(file, function, root, location=location)
    return build_prompt(file, function, framework="pytest", module_import=location.module_import,
                        project=project, **options)


def block_of(text: str) -> str:
    """The project block at the start of a prompt's text (it must have one)."""
    assert "# The code under test, " in text, text[:200]
    return text[: text.index("# The code under test, ")]


class WordTokenizer:
    """A tokenizer that counts words; with `chat`, it has a chat template (an instruct model's)."""

    eos_token_id = None

    def __init__(self, chat: bool = False):
        self.chat_template = "plain" if chat else None

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return "".join(f"<{m['role']}>\n{m['content']}\n" for m in messages) + "<assistant>\n"


# -- what the function uses, across files ---------------------------------------------------------

def test_the_prompt_shows_the_helper_and_the_class_the_function_uses_and_nothing_unrelated(shop):
    prompt = prompt_for(shop, "src/shop/pricing.py", "apply_discount")
    block = block_of(prompt.text)
    # A helper through a relative import, with its docstring's first paragraph only.
    assert "# src/shop/money.py\ndef round_cents(value: Decimal) -> Decimal:\n" in block
    assert '"""Round `value` to whole cents, half up."""' in block
    assert "SECOND PARAGRAPH" not in block
    # A class of a src/ package, imported through the package's `__init__.py` re-export.
    assert "# src/shop/cart.py\nclass Cart:\n" in block
    assert '"""A shopping cart of one customer."""' in block
    assert "    def total(self) -> Decimal:\n        \"\"\"The sum of the prices of all items.\"\"\"" in block
    assert "    def __init__(self, owner: str): ..." in block
    assert "    @property\n    def size(self) -> int: ..." in block
    # Nothing the function does not use, nothing private, nothing from outside the project.
    for absent in ("unused_helper", "UNUSED_HELPER_DOC", "_audit", "PRIVATE_METHOD_DOC", "class Item", "getenv",
                   "def shipping"):
        assert absent not in block, absent
    # The focal code follows the block, as it did without one.
    assert prompt.text.index("def apply_discount(") > prompt.text.index("# The code under test, src/shop/pricing.py:")


def test_a_focal_method_shows_its_class_public_api_first(shop):
    block = block_of(prompt_for(shop, "src/shop/cart.py", "Cart.add").text)
    assert block.startswith(f"{BLOCK_TITLE} Cart.add uses:\n\n# src/shop/cart.py\nclass Cart:\n")
    assert "def total(self) -> Decimal:" in block and "def size(self) -> int" in block
    assert "def add(" not in block  # the focal method is shown whole below, not here
    assert "_audit" not in block
    # The annotated parameter type is shown too: how to build an Item.
    assert '@dataclass(frozen=True)\nclass Item:\n    """Something to buy."""\n    name: str\n    price: Decimal' in block


def test_the_block_is_the_same_every_time(shop):
    assert prompt_for(shop, "src/shop/pricing.py", "apply_discount").text == \
        prompt_for(shop, "src/shop/pricing.py", "apply_discount").text


def test_java_shows_the_public_signatures_of_the_same_package_types_a_method_uses(tmp_path):
    root = write_project(tmp_path / "jshop", JAVA_SHOP)
    file, function = focal(root, "src/main/java/com/shop/Cart.java", "Cart.total")
    location = locate_test_file(file.path, root)
    project = gather_project_context(file, function, root, location=location)
    text = build_prompt(file, function, framework="junit5", module_import=location.module_import, project=project).text
    block = text[: text.index("// The code under test")]
    assert "public static Money of(int cents);" in block and "public Money plus(Money other);" in block
    assert "public interface Discount {\n    Money apply(Money price);\n}" in block  # a field's type
    assert "secretCents" not in block and "private Money(" not in block and "Unused" not in block
    assert "// An existing test, CartTest.totalWithoutDiscount in src/test/java/com/shop/CartTest.java:" in block


# -- the nearest existing test ----------------------------------------------------------------------

def test_the_nearest_existing_test_is_the_one_that_calls_the_function(shop):
    block = block_of(prompt_for(shop, "src/shop/pricing.py", "apply_discount").text)
    assert "# An existing test, test_apply_discount_halves_the_total in tests/test_pricing.py:" in block
    assert 'assert apply_discount(cart, 50) == Decimal("1.50")' in block
    assert "test_shipping_is_free_from_three_items" not in block  # in the same file, but not about it


def test_without_a_test_that_calls_it_the_most_alike_name_is_shown(shop):
    (shop / "tests" / "test_wrapping.py").write_text("def test_gift_wrapping_costs_two():\n    assert True\n")
    block = block_of(prompt_for(shop, "src/shop/pricing.py", "gift_wrap").text)
    assert "# An existing test, test_gift_wrapping_costs_two in tests/test_wrapping.py:" in block


def test_training_never_shows_the_target_test_nor_a_copy_of_it(shop):
    target = (
        "def test_apply_discount_halves_the_total():\n"
        '    cart = Cart("ann")\n'
        '    cart.add(Item("pen", Decimal("3.00")))\n'
        '    assert apply_discount(cart, 50) == Decimal("1.50")\n'
    )
    copy = target.replace("test_apply_discount_halves_the_total", "test_same_under_another_name")
    with (shop / "tests" / "test_pricing.py").open("a") as handle:
        handle.write("\n\n" + copy)
    file, function = focal(shop, "src/shop/pricing.py", "apply_discount")
    prompt, completion = training_example(file, function, target, framework="pytest", module_import="shop.pricing",
                                          project_root=shop)
    block = block_of(prompt)
    assert "halves_the_total" not in block and "test_same_under_another_name" not in block
    assert 'apply_discount(cart, 50) == Decimal("1.50")' not in block
    assert "def round_cents(" in block  # the rest of the block is as inference shows it
    assert completion.strip().endswith('assert apply_discount(cart, 50) == Decimal("1.50")')
    # At inference nothing is hidden: the developer's test is the example.
    inference = block_of(prompt_for(shop, "src/shop/pricing.py", "apply_discount").text)
    assert "test_apply_discount_halves_the_total" in inference


# -- the budget, the setting and the format ---------------------------------------------------------

def fitted(root: Path, budget: int, tokenizer=None, options=None, name="apply_discount"):
    file, function = focal(root, "src/shop/pricing.py", name)
    location = locate_test_file(file.path, root)
    return fit_prompt(PreparedRequest(file, function, location, "pytest", None), tokenizer or WordTokenizer(), budget,
                      "fm+fc+c+m+f", options=options or PromptOptions(project_root=root))


def test_over_budget_the_project_block_goes_before_any_context(shop):
    full, notes = fitted(shop, 10_000)
    without = prompt_for(shop, "src/shop/pricing.py", "apply_discount", format_version=2)
    assert BLOCK_TITLE in full.text and notes == []
    words = len(without.text.split())
    prompt, notes = fitted(shop, words)  # room for everything but the block
    assert prompt.text == without.text and prompt.level == "fm+fc+c+m+f"
    assert notes == [f"the project block (2 definitions and 1 existing test) was left out to fit the model's "
                     f"{words}-token prompt budget"]
    # A little more room keeps the definitions and drops the example test first.
    file, function = focal(shop, "src/shop/pricing.py", "apply_discount")
    project = gather_project_context(file, function, shop)
    definitions_only = build_prompt(file, function, framework="pytest", module_import="shop.pricing",
                                    project=replace(project, examples=()))
    prompt, notes = fitted(shop, len(definitions_only.text.split()))
    assert prompt.text == definitions_only.text
    assert "def round_cents(" in prompt.text and "# An existing test" not in prompt.text
    assert notes[0].startswith("the project block (2 definitions and 1 existing test) was cut to 2 definitions")
    # Only when even the plain prompt is too long does the context level go down.
    prompt, notes = fitted(shop, words - 5)
    assert BLOCK_TITLE not in prompt.text and prompt.level != "fm+fc+c+m+f"
    assert "left out" in notes[0] and notes[1].startswith("context reduced to")


def test_project_context_false_gives_the_format_2_prompt_exactly(shop):
    format_2 = prompt_for(shop, "src/shop/pricing.py", "apply_discount", format_version=2)
    assert BLOCK_TITLE not in format_2.text
    loaded = load_settings(shop, {"project_context": False}, COMMAND_LINE).settings
    request = GenerationRequest(shop / "src/shop/pricing.py", 0, loaded, project_root=shop)
    prompt, notes = fitted(shop, 10_000, options=prompt_options(request))
    assert prompt.text == format_2.text and notes == []
    assert prompt.format_version == PROMPT_FORMAT_VERSION  # only the block is left out: the instruction is 3's


def test_an_adapter_trained_with_format_2_gets_the_format_2_prompt(shop):
    adapter = SimpleNamespace(card=SimpleNamespace(prompt_format_version=2))
    request = GenerationRequest(shop / "src/shop/pricing.py", 0, Settings(), project_root=shop, adapter=adapter)
    chat = WordTokenizer(chat=True)
    prompt, _ = fitted(shop, 10_000, tokenizer=chat, options=prompt_options(request))
    assert prompt.format_version == 2
    assert prompt.text == prompt_for(shop, "src/shop/pricing.py", "apply_discount", format_version=2).text
    old = model_input(chat, prompt.text, prompt.language, format_version=prompt.format_version)
    assert "Write a pytest unit test for the function" in old and "one short" not in old
    # A format-3 adapter, or none, gets the block and the new instruction.
    current = GenerationRequest(shop / "src/shop/pricing.py", 0, Settings(), project_root=shop)
    prompt, _ = fitted(shop, 10_000, tokenizer=chat, options=prompt_options(current))
    new = model_input(chat, prompt.text, prompt.language, format_version=prompt.format_version)
    assert BLOCK_TITLE in new and "Write one short pytest test" in new and "at most three assertions" in new


def test_format_2_adapters_are_accepted_and_unknown_formats_refused():
    def card(version):
        return AdapterCard(name="mine", method="lora", base_model=BaseModelRef("base"), prompt_format_version=version)

    assert SUPPORTED_PROMPT_FORMATS == (2, 3) and PROMPT_FORMAT_VERSION == 3
    for version in (2, 3):
        check_compatible(card(version), "base", None, SUPPORTED_PROMPT_FORMATS)
    with pytest.raises(AdapterMismatchError, match="prompt format 1 but this unitune builds prompt format 2 or 3"):
        check_compatible(card(1), "base", None, SUPPORTED_PROMPT_FORMATS)


def test_the_setting_is_a_switch_on_generate_and_eval(shop):
    from unitune.commands.generate import add_generate_parser
    from unitune.commands.eval import add_eval_parser

    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers()
    add_generate_parser(commands)
    add_eval_parser(commands)
    for words in (["generate", "a.py", "--line", "1"], ["eval", "--base", "--dataset", "humaneval"]):
        assert setting_overrides(parser.parse_args(words + ["--no-project-context"])) == {"project_context": False}
        assert setting_overrides(parser.parse_args(words + ["--project-context"])) == {"project_context": True}
        assert "project_context" not in setting_overrides(parser.parse_args(words))
    (shop / "unitune.toml").write_text("project_context = false\n")
    assert load_settings(shop).settings.project_context is False
    loaded = load_settings(shop, {"project_context": "no"}, COMMAND_LINE)
    assert loaded.settings.project_context is False  # the file's value stands; the bad flag is reported
    assert "project_context = 'no' must be true or false" in loaded.problems[0]


def test_a_request_reads_the_editor_text_of_the_test_file(shop):
    """An unsaved test in the editor is the nearest test, as the user sees the file."""
    unsaved = "def test_apply_discount_of_nothing():\n    assert apply_discount(Cart('x'), 10) == 0\n"
    request = GenerationRequest(shop / "src/shop/pricing.py", 0, Settings(), project_root=shop,
                                open_text=lambda path: unsaved if path.name == "test_pricing.py" else None)
    request.offset = (shop / "src/shop/pricing.py").read_bytes().index(b"def apply_discount")
    prompt, _ = fit_prompt(prepare(request), WordTokenizer(), 10_000,
                           "fm+fc+c+m+f", options=prompt_options(request))
    assert "# An existing test, test_apply_discount_of_nothing in tests/test_pricing.py:" in prompt.text


def test_pairs_mined_with_format_2_train_a_format_2_adapter():
    from unitune.training.data import tokenize_pairs
    from unitune.training.run import TrainInputError, _pairs_format

    pair = {"language": "python", "prompt": "def f():\n    return 1\n\n\ndef test_f():\n",
            "completion": "    assert f() == 1\n", "split": "train", "prompt_format": 2}
    chat = WordTokenizer(chat=True)
    example = tokenize_pairs([pair], chat, 10_000).examples[0]
    asked = model_input(chat, pair["prompt"], "python", format_version=2).split()
    assert example.input_ids[: len(asked)] == asked and "short" not in asked
    assert _pairs_format([pair, dict(pair)]) == 2 and _pairs_format([{**pair, "prompt_format": 3}]) == 3
    with pytest.raises(TrainInputError, match="prompt formats 2 and 3"):
        _pairs_format([pair, {**pair, "prompt_format": 3}])


def test_a_large_class_keeps_what_a_test_of_the_method_needs_when_not_all_fits(tmp_path):
    filler = "".join(f'    def helper_{n}(self, value: int) -> int:\n        """Helper number {n}, which no test of '
                     f'bump_minor needs at all."""\n        return value\n\n' for n in range(40))
    source = ('class Version:\n    """A version."""\n\n    def __init__(self, major: int, minor: int):\n'
              '        self.major, self.minor = major, minor\n\n' + filler +
              '    @classmethod\n    def parse(cls, text: str) -> "Version":\n        """Parse `text`."""\n'
              '        return cls(*map(int, text.split(".")))\n\n'
              '    def bump_major(self) -> "Version":\n        """One major up."""\n        return Version(self.major + 1, 0)\n\n'
              '    def bump_minor(self) -> "Version":\n        return Version(self.major, self.minor + 1)\n')
    root = write_project(tmp_path / "ver", {"pyproject.toml": "", "ver.py": source})
    block = block_of(prompt_for(root, "ver.py", "Version.bump_minor").text)
    assert "def __init__(self, major: int, minor: int): ..." in block
    assert '@classmethod\n    def parse(cls, text: str) -> "Version":' in block  # how a test makes one
    assert 'def bump_major(self) -> "Version":\n        """One major up."""' in block  # named like the focal
    assert "def helper_39(" not in block and block.rstrip().endswith("# ...")
    assert len(block) < 2000
