//! Planning hardware the user does not own: a hardware spec catalog, calibrations of
//! each device class fitted on measured local results ([`fit`]), a load-point model of
//! a continuously batching engine ([`serve`]), the planner that sizes and prices a
//! fleet per traffic level with scenarios and a sensitivity table ([`capacity`]), and
//! the back-test that publishes the projections' error ([`backtest`]).
//!
//! Layered: [`hardware`], then [`fit`], [`serve`], [`backtest`], [`capacity`], [`planner`];
//! [`doc`] holds the published types.

pub mod backtest;
pub mod capacity;
pub mod doc;
pub mod fit;
pub mod hardware;
pub mod planner;
pub mod schema;
pub mod serve;

pub use backtest::{BACKTEST_SCHEMA, BACKTEST_SCHEMA_VERSION, BacktestDoc, backtest};
pub use capacity::{ModelDims, PlanError, PlanInputs};
pub use doc::{PLAN_SCHEMA, PLAN_SCHEMA_VERSION, PlanDoc, PlanSlo, PlanTraffic, PlanWorkload};
pub use hardware::{DeviceClass, HardwareCatalog};
pub use planner::plan;
