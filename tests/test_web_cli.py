"""`shopthelook serve` and `shopthelook demo`: the demo cache is built once, then reused."""

from __future__ import annotations

import pandas as pd

from tests.conftest import draw_image

KINDS = ("Armchair", "Sofa, 3-seat", "Vase")


def fake_ikea_root(root):
    """A data root shaped like ../shared/data/ikea, with drawn photos."""
    ikea = root / "ikea"
    (ikea / "products").mkdir(parents=True)
    (ikea / "rooms").mkdir()
    rows = []
    for i in range(9):
        draw_image(200 + i, (48, 48)).save(ikea / "products" / f"{i:03d}.jpg")
        rows.append(
            {
                "product_id": f"{i:03d}.000.00",
                "image": f"products/{i:03d}.jpg",
                "product_type": KINDS[i % 3],
                "name": f"THING{i}",
                "color": "White",
                "size": "",
                "description": "",
                "source_folder": "living",
            }
        )
    pd.DataFrame(rows).to_csv(ikea / "products.csv", index=False)
    draw_image(300, (160, 120)).save(ikea / "rooms" / "room-1.jpg")
    pd.DataFrame(
        [{"room_id": "room-1", "image": "rooms/room-1.jpg", "room_category": "Living Room"}]
    ).to_csv(ikea / "rooms.csv", index=False)
    pd.DataFrame([{"room_id": "room-1", "product_id": "000.000.00"}]).to_csv(
        ikea / "room_products.csv", index=False
    )
    return root


def test_demo_catalog_is_built_once_then_reused(tmp_path, capsys):
    from shopthelook.commands.serve import ensure_demo_catalog, ensure_demo_directions
    from shopthelook.core.config import load_settings

    data_root = fake_ikea_root(tmp_path / "data")
    settings = load_settings(backbone="hvf", data_root=data_root)
    folder = tmp_path / "cache" / "catalog"
    built = ensure_demo_catalog(settings, folder, progress=False)
    assert len(built) == 9 and "building the demo catalog" in capsys.readouterr().out
    again = ensure_demo_catalog(settings, folder, progress=False)
    assert "cached" in capsys.readouterr().out
    assert again.manifest["created"] == built.manifest["created"]
    # a damaged cache is rebuilt, not served
    (folder / "embeddings.npy").unlink()
    rebuilt = ensure_demo_catalog(settings, folder, progress=False)
    assert "rebuilding" in capsys.readouterr().out and len(rebuilt) == 9
    # no furniture-styles under this data root: no chips, said plainly
    assert ensure_demo_directions(settings, rebuilt, tmp_path / "dirs", progress=False) is None
    assert "no style chips" in capsys.readouterr().out


def test_serve_with_a_missing_catalog_is_a_one_line_error(tmp_path, capsys):
    from shopthelook.cli import main

    assert main(["serve", "--catalog", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: catalog") and "\n" not in err
