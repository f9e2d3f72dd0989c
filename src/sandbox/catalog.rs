//! The sandbox's fixed catalogue of certificate plans and their `domainlimit` add-ons.

use rust_decimal::Decimal;

use crate::billmgr::Element;

/// A `domainlimit` add-on: the number of extra domains, priced per domain per 12 months.
#[derive(Debug, Clone, Copy)]
pub struct Addon {
    pub id: u32,
    pub name: &'static str,
    /// Price of one extra domain for 12 months, in cents.
    pub cents_per_year: i64,
}

/// A certificate plan (a `pricelist` in BILLmanager terms).
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub id: u32,
    pub name: &'static str,
    /// (months, price in cents).
    pub periods: &'static [(u32, i64)],
    pub addon: Option<Addon>,
    /// The CN must be (and may only be) a `*.` wildcard.
    pub wildcard: bool,
}

pub const PLANS: &[Plan] = &[
    Plan {
        id: 3033,
        name: "PositiveSSL",
        periods: &[(12, 900), (24, 1600), (36, 2250)],
        addon: Some(Addon {
            id: 3034,
            name: "domainlimit",
            cents_per_year: 500,
        }),
        wildcard: false,
    },
    Plan {
        id: 3040,
        name: "PositiveSSL Wildcard",
        periods: &[(12, 7900), (24, 15000)],
        addon: None,
        wildcard: true,
    },
    Plan {
        id: 3050,
        name: "EV Multi-Domain",
        periods: &[(12, 19900)],
        addon: Some(Addon {
            id: 3051,
            name: "domainlimit",
            cents_per_year: 2500,
        }),
        wildcard: false,
    },
];

pub fn plan(id: u32) -> Option<&'static Plan> {
    PLANS.iter().find(|p| p.id == id)
}

impl Plan {
    /// The price of `months`, if the plan sells that period.
    pub fn price(&self, months: u32) -> Option<Decimal> {
        self.periods
            .iter()
            .find(|(m, _)| *m == months)
            .map(|(_, c)| Decimal::new(*c, 2))
    }

    /// The cost of `months` with `extra_domains` bought through the add-on.
    pub fn cost(&self, months: u32, extra_domains: u32) -> Option<Decimal> {
        let base = self.price(months)?;
        let addon = match self.addon {
            Some(a) => a.price(months) * Decimal::from(extra_domains),
            None => Decimal::ZERO,
        };
        Some(base + addon)
    }

    /// The `<pricelist>` element of `pricelist.export`, shaped like a real BILLmanager 6
    /// export: the price is each period's `cost`; the period's text is a label
    /// (`1 year`); `itemtype` is a numeric id; `name_ru`, `description`, `datacenter` and,
    /// on the add-on, `intname`, `addonlimit` and `measure` come along.
    pub fn export(&self, currency: &str) -> Element {
        let mut price = Element::new("price").attr("currency", currency);
        for (months, cents) in self.periods {
            price.push(period(*months, Decimal::new(*cents, 2)));
        }
        let mut pl = Element::new("pricelist")
            .child(Element::leaf("id", self.id.to_string()))
            .child(Element::leaf("name", self.name))
            .child(Element::leaf("name_ru", self.name))
            .child(Element::leaf(
                "description",
                format!("{} SSL certificate", self.name),
            ))
            .child(Element::leaf("itemtype", ITEMTYPE_CERTIFICATE))
            .child(Element::leaf("datacenter", "1"))
            .child(price);
        if let Some(a) = self.addon {
            let mut aprice = Element::new("price").attr("currency", currency);
            for (months, _) in self.periods {
                aprice.push(period(*months, a.price(*months)));
            }
            pl.push(
                Element::new("addon")
                    .child(Element::leaf("id", a.id.to_string()))
                    .child(Element::leaf("name", "Additional domains"))
                    .child(Element::leaf("intname", a.name))
                    .child(Element::leaf("itemtype", ITEMTYPE_ADDON))
                    .child(Element::leaf("addonlimit", "250"))
                    .child(Element::leaf("measure", "pcs."))
                    .child(aprice),
            );
        }
        pl
    }
}

/// Item type ids as an upstream numbers them (the answer carries the id, not the name).
const ITEMTYPE_CERTIFICATE: &str = "27";
const ITEMTYPE_ADDON: &str = "28";

impl Addon {
    /// Price of one extra domain for `months` (the yearly price scaled by months/12).
    pub fn price(&self, months: u32) -> Decimal {
        Decimal::new(self.cents_per_year, 2) * Decimal::from(months) / Decimal::from(12)
    }
}

fn period(months: u32, cost: Decimal) -> Element {
    let label = match months {
        12 => "1 year".to_string(),
        m if m % 12 == 0 => format!("{} years", m / 12),
        m => format!("{m} months"),
    };
    Element::new("period")
        .attr("cost", money4(cost))
        .attr("type", "month")
        .attr("length", months.to_string())
        .text(label)
}

/// Money with 4 decimals, like BILLmanager renders costs (`9.0000`).
pub fn money4(d: Decimal) -> String {
    let mut d = d.round_dp(4);
    d.rescale(4);
    d.to_string()
}

/// Money with 2 decimals (balances).
pub fn money2(d: Decimal) -> String {
    let mut d = d.round_dp(2);
    d.rescale(2);
    d.to_string()
}
