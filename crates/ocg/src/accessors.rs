//! Checked conversions from wire values to core domain types, for the gateway. The codec keeps
//! raw wire values (Decimal x10^8, char[n] strings); these helpers are exact or fail.

use twinsite_core::{BrokerId, ClOrdId, IdError, Price, PriceError, Qty, SecurityCode};

use crate::enums::{OrdType, OrderCapacity, Side, TimeInForce};
use crate::messages::{AmendRequest, CancelRequest, ExecutionReport, NewOrder};
use crate::wire::{Decimal, FixedStr};

fn price(d: Option<Decimal>) -> Result<Option<Price>, PriceError> {
    d.map(Decimal::to_price).transpose()
}

impl NewOrder {
    /// A board-lot Day limit order in a Hong Kong security (`XHKG`), agency capacity, with the
    /// fields a participant normally leaves at their defaults: the order test clients, benches
    /// and bots send.
    pub fn day_limit(
        cl_ord_id: &str,
        broker: u32,
        security: &str,
        side: Side,
        price: Price,
        qty: Qty,
        transact_time: &str,
    ) -> NewOrder {
        NewOrder {
            cl_ord_id: FixedStr::new(cl_ord_id),
            submitting_broker_id: FixedStr::display(broker),
            security_id: FixedStr::new(security),
            security_id_source: 8,
            security_exchange: Some(FixedStr::new("XHKG")),
            broker_location_id: None,
            transact_time: FixedStr::new(transact_time),
            side,
            ord_type: OrdType::Limit,
            price: Some(Decimal::from_price(price)),
            order_qty: Decimal::from_qty(qty),
            time_in_force: Some(TimeInForce::Day),
            position_effect: None,
            order_restrictions: None,
            max_price_levels: Some(1),
            order_capacity: Some(OrderCapacity::Agency),
            text: None,
            execution_instructions: None,
            disclosure_instructions: 1,
            lot_type: None,
            submitting_bcan: Some(FixedStr::new("1")),
        }
    }
    pub fn client_order_id(&self) -> Result<ClOrdId, IdError> {
        ClOrdId::new(self.cl_ord_id.as_str())
    }
    pub fn submitting_broker(&self) -> Result<BrokerId, IdError> {
        self.submitting_broker_id.parse()
    }
    pub fn security_code(&self) -> Result<SecurityCode, IdError> {
        self.security_id.parse()
    }
    /// The limit price, if present (absent for market orders).
    pub fn limit_price(&self) -> Result<Option<Price>, PriceError> {
        price(self.price)
    }
    pub fn quantity(&self) -> Result<Qty, PriceError> {
        self.order_qty.to_qty()
    }
}

impl AmendRequest {
    pub fn original_client_order_id(&self) -> Result<ClOrdId, IdError> {
        ClOrdId::new(self.orig_cl_ord_id.as_str())
    }
    pub fn limit_price(&self) -> Result<Option<Price>, PriceError> {
        price(self.price)
    }
    pub fn quantity(&self) -> Result<Qty, PriceError> {
        self.order_qty.to_qty()
    }
}

impl CancelRequest {
    pub fn original_client_order_id(&self) -> Result<ClOrdId, IdError> {
        ClOrdId::new(self.orig_cl_ord_id.as_str())
    }
}

impl ExecutionReport {
    pub fn last_price(&self) -> Result<Option<Price>, PriceError> {
        price(self.last_px)
    }
    pub fn last_quantity(&self) -> Result<Option<Qty>, PriceError> {
        self.last_qty.map(Decimal::to_qty).transpose()
    }
    pub fn leaves_quantity(&self) -> Result<Option<Qty>, PriceError> {
        self.leaves_qty.map(Decimal::to_qty).transpose()
    }
    pub fn cumulative_quantity(&self) -> Result<Option<Qty>, PriceError> {
        self.cum_qty.map(Decimal::to_qty).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enums::*;
    use crate::wire::FixedStr;

    #[test]
    fn new_order_converts_exactly_or_fails() {
        let mut o = NewOrder {
            cl_ord_id: FixedStr::new("1001"),
            submitting_broker_id: FixedStr::new("1234"),
            security_id: FixedStr::new("5"),
            security_id_source: SECURITY_ID_SOURCE_EXCHANGE_SYMBOL,
            security_exchange: None,
            broker_location_id: None,
            transact_time: FixedStr::new("20231114-22:13:20.000000"),
            side: Side::SellShort,
            ord_type: OrdType::Limit,
            price: Some(Decimal(1_234_000_000)),
            order_qty: Decimal(40_000_000_000),
            time_in_force: None,
            position_effect: None,
            order_restrictions: None,
            max_price_levels: None,
            order_capacity: None,
            text: None,
            execution_instructions: None,
            disclosure_instructions: 1,
            lot_type: None,
            submitting_bcan: None,
        };
        assert_eq!(o.limit_price(), Ok(Some(Price(12_340))));
        assert_eq!(o.quantity(), Ok(Qty(400)));
        assert_eq!(o.security_code(), Ok(SecurityCode(5)));
        assert_eq!(o.submitting_broker(), Ok(BrokerId(1234)));
        assert_eq!(o.side.book_side(), twinsite_core::Side::Sell);
        o.price = Some(Decimal(1_234_500_001));
        assert!(o.limit_price().is_err());
        o.security_id = FixedStr::new("0005");
        assert!(o.security_code().is_err());
    }
}
