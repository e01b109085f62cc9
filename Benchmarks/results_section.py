"""One section of Benchmarks/RESULTS.md, between its begin and end markers, rewritten by the
benchmark that owns it; the other sections stay as they are."""
import os


def replace_section(path, begin, end, lines):
    """Writes `lines` (which start with `begin` and end with `end`) in place of the file's
    section between those markers, or appends them; prints the section."""
    section = "\n".join(lines) + "\n"
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) + 1 :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    open(path, "w").write(text)
    print(section)
