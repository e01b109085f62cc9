"""Writes every ```swift block of README.md as the main.swift of an executable target
(readme-snippet-N) into a generated package, and adds those targets to its Package.swift, so
that building the package compiles every snippet as a user would write it.
Usage: python3 scripts/readme_snippets.py README.md PACKAGE_FOLDER SHOAL_IDENTITY
"""
import os
import re
import sys


def main():
    readme, package, identity = sys.argv[1], sys.argv[2], sys.argv[3]
    blocks = re.findall(r"```swift\n(.*?)```", open(readme).read(), re.S)
    targets = []
    for index, block in enumerate(blocks):
        name = f"readme-snippet-{index}"
        folder = os.path.join(package, "Sources", name)
        os.makedirs(folder, exist_ok=True)
        open(os.path.join(folder, "main.swift"), "w").write(f"// README.md, Swift block {index}\n" + block)
        products = ", ".join(
            f'.product(name: "{product}", package: "{identity}")'
            for product in ("Shoal", "ShoalTrain", "ShoalTensor", "ShoalMarket", "ShoalRL", "ShoalPlot", "ShoalRollouts")
            if product == "Shoal" or f"import {product}\n" in block)
        targets.append(
            f'package.targets.append(.executableTarget(name: "{name}", dependencies: [{products}], path: "Sources/{name}", '
            f'swiftSettings: [.swiftLanguageMode(.v6)]))')
    with open(os.path.join(package, "Package.swift"), "a") as out:
        out.write("\n// Every Swift block of README.md (scripts/readme_snippets.py).\n" + "\n".join(targets) + "\n")
    print(len(blocks))


if __name__ == "__main__":
    main()
