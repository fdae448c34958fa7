from service.store import products
from service.store.products import Product
from service.verify.pills.catalog import Ingredient
from service.verify.pills.orders import OrderedDrug


async def test_expected_products_by_code_widened_to_same_clinical_drug(conn):
    met = [Ingredient("METFORMIN", "500 mg")]
    await products.create_product(
        conn, Product("teva", ingredients=met, ndcs=["00093-1048-01"], dose_form="tablet")
    )
    await products.create_product(conn, Product("mylan", ingredients=met, rxcui="861007"))
    await products.create_product(conn, Product("caps", ingredients=met, dose_form="capsule"))
    await products.create_product(
        conn, Product("other", ingredients=[Ingredient("METFORMIN", "1000 mg")])
    )
    # NDC in 11-digit form, different package size, finds the product and its generic twin.
    got = await products.products_for_order(conn, OrderedDrug(ndc_products=["000931048"]))
    assert [p.id for p in got] == ["mylan", "teva"]
    by_rxcui = await products.products_for_order(conn, OrderedDrug(rxcuis=["861007"]))
    assert [p.id for p in by_rxcui] == ["caps", "mylan", "teva"]
    by_text = await products.products_for_order(
        conn, OrderedDrug(ingredients=[Ingredient("Metformin", "500 mg")], dose_form="tablet")
    )
    assert [p.id for p in by_text] == ["mylan", "teva"]
    assert await products.products_for_order(conn, OrderedDrug(rxcuis=["1"])) == []
