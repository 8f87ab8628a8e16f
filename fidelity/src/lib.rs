//! How faithful an attribution map is, measured against what is known about the image and the
//! model: whether the map points at the object (pointing game, relevance mass inside its mask),
//! whether the pixels it ranks first are the ones the prediction needs (deletion and insertion
//! curves, Petsiuk et al. 2018), and whether it changes when the model does (Spearman rank
//! correlation, for the parameter-randomisation test of Adebayo et al. 2018).
//!
//! Pure arithmetic on `ndarray` maps, owned by neither the service nor the SDK: the service scores
//! the maps it returns with it when asked, and the CLI's `explain eval` drives it against a live server.

mod correlation;
mod error;
mod localisation;
mod perturbation;
mod relevance;

pub use self::{
    correlation::spearman,
    error::FidelityError,
    localisation::{pointing_game, relevance_mass},
    perturbation::{
        Perturbation, area_under_curve, by_relevance, curve_image, curve_images, random_order, step_counts,
    },
    relevance::pixel_relevance,
};
