"""The reference set as a list of :class:`~pyro_programs.common.Case`: program, data, and how Pyro evaluates it."""

from __future__ import annotations

import torch
from pyro.infer import config_enumerate
from pyro.infer.autoguide import AutoDelta, AutoDiagonalNormal, AutoMultivariateNormal, AutoNormal

from pyro_programs import continuous as cont
from pyro_programs import discrete as enum
from pyro_programs import global_latents as glob
from pyro_programs import guide_side as gside
from pyro_programs import refused as bad
from pyro_programs.common import (D, N, Case, autoguide, binary, bits, empty_guide, labelled, matrix, module, pair,
                                  randn, reals, with_mask)


CASES = [
    Case("normal", pair(cont.normal_model, cont.normal_guide), reals, iwae=4),
    Case("lognormal", pair(cont.lognormal_model, cont.lognormal_guide), reals, iwae=4),
    Case("gamma_poisson", pair(cont.gamma_model, cont.gamma_guide),
         lambda: (torch.tensor([0.0, 3.0, 1.0, 5.0, 2.0]),), iwae=4),
    Case("beta_bernoulli_pixels", pair(cont.beta_model, cont.beta_guide), lambda: (bits(N, D, seed=5),),
         max_plate_nesting=2,
         iwae=4),
    Case("dirichlet_categorical_pixels", pair(cont.dirichlet_model, cont.dirichlet_guide),
         lambda: (torch.tensor([[0, 1, 2], [2, 2, 1], [0, 0, 0], [1, 2, 1], [0, 2, 2]]),), max_plate_nesting=2, iwae=4),
    Case("mvn", pair(cont.mvn_model, cont.mvn_guide), matrix, iwae=4),
    Case("amortised_to_event", pair(cont.amortised_model, cont.amortised_guide), matrix, iwae=4),
    Case("nested_plates", pair(cont.nested_model, cont.nested_guide), matrix, max_plate_nesting=2, iwae=4),
    Case("vae", module(cont.VAE), binary, iwae=4),
    Case("vae_pixel_plate", module(cont.PixelVAE), binary, max_plate_nesting=2, iwae=4),
    Case("vae_view", module(lambda: cont.VAE(view=True)), binary, iwae=4, broadcasts=False),
    Case("conditional_input", pair(cont.regression_model, cont.regression_guide),
         lambda: (randn(N, 2, seed=6), randn(N, seed=8)),
         iwae=4),
    Case("enum_categorical", pair(enum.categorical_model, empty_guide), reals, enum=True),
    Case("enum_bernoulli_pixels", pair(enum.bernoulli_model, empty_guide), matrix, enum=True, max_plate_nesting=2),
    Case("enum_two", pair(enum.two_model, empty_guide), reals, enum=True),
    Case("enum_chain", pair(enum.chain_model, empty_guide), reals, enum=True),
    Case("enum_per_pixel", pair(enum.pixel_enum_model, empty_guide), matrix, enum=True, max_plate_nesting=2),
    Case("enum_point_and_pixel", pair(enum.point_pixel_model, empty_guide), matrix, enum=True, max_plate_nesting=2),
    Case("enum_beside_guided", pair(enum.mixed_model, enum.mixed_guide), reals, enum=True),
    Case("enum_mask", pair(enum.masked_model, empty_guide), with_mask(reals), enum=True),
    Case("enum_mask_obs_only", pair(enum.masked_obs_model, empty_guide), with_mask(reals), enum=True),
    Case("enum_scale", pair(enum.scaled_model, empty_guide), reals, enum=True),
    Case("enum_obs_mask", pair(enum.obs_mask_model, enum.obs_mask_guide), labelled, enum=True),
    Case("guide_enum_obs_mask", pair(enum.guide_mask_model, enum.guide_mask_guide), labelled, enum=True,
         guide_enumerates=True, sites=("y_unobserved",)),
    Case("hmm_lengths", pair(enum.hmm_model, empty_guide), enum.hmm_data, enum=True, max_plate_nesting=2),
    Case("hmm_global_autodelta", enum.autoguide_hmm, enum.hmm_data, enum=True, max_plate_nesting=2, broadcasts=False),
    Case("guide_enum", pair(gside.guide_enum_model, config_enumerate(gside.guide_enum_guide)), reals, enum=True,
         guide_enumerates=True, sites=("c",)),
    Case("guide_samples_discrete", pair(gside.guide_enum_model, gside.guide_enum_guide), reals),
    Case("guide_and_model_enum", pair(gside.enum_both_model, gside.enum_both_guide), reals, enum=True, exact=False,
         guide_enumerates=True, may_refuse=True, sites=("a", "b")),  # a: no rsample; b: enumerated by the guide
    Case("m2_supervised", module(gside.SSVAE), gside.m2_data, iwae=4),
    Case("m2_unsupervised", module(gside.SSVAE), lambda: gside.m2_data(labelled=False), enum=True, exact=False,
         guide_enumerates=True, sites=("y",)),
    Case("m2_obs_mask", module(gside.MaskedSSVAE), gside.m2_masked_data, enum=True, exact=False,
         guide_enumerates=True, sites=("y_unobserved",)),
    Case("coin_global", pair(glob.coin_model, glob.coin_guide), lambda: (bits(N, seed=9),)),
    Case("weight_prior_global", pair(glob.weight_prior_model, glob.weight_prior_guide), matrix),
    Case("linreg_global", pair(glob.linreg_model, glob.linreg_guide), glob.regression_data),
    Case("linreg_pyromodule_autodiagonal", glob.bayes_module(AutoDiagonalNormal), glob.regression_data,
         broadcasts=False),
    Case("linreg_pyromodule_autonormal", glob.bayes_module(AutoNormal), glob.regression_data, broadcasts=False),
    Case("linreg_pyromodule_automvn", glob.bayes_module(AutoMultivariateNormal), glob.regression_data,
         broadcasts=False),
    Case("linreg_pyromodule_autodelta", glob.bayes_module(AutoDelta), glob.regression_data, broadcasts=False),
    Case("linreg_autonormal", autoguide(glob.linreg_model, AutoNormal), glob.regression_data),
    Case("gmm_tutorial_autodelta", glob.gmm_guide(AutoDelta), lambda: (glob.GMM_DATA.clone(),), enum=True,
         broadcasts=False),
    Case("gmm_tutorial_autonormal", glob.gmm_guide(AutoNormal), lambda: (glob.GMM_DATA.clone(),), enum=True,
         broadcasts=False),
    Case("toy_mixture_global", pair(glob.toy_mixture_model, glob.toy_mixture_guide),
         lambda: (bits(N, seed=10), bits(N, seed=13)), enum=True, broadcasts=False),
    Case("plate_named_batch", pair(glob.batch_model, glob.batch_guide), reals, iwae=4),
    Case("subsample_per_point_params", pair(glob.subsample_model, glob.subsample_guide), reals, iwae=4),
    Case("per_point_params", pair(glob.per_point_model, glob.per_point_guide), reals, iwae=4),
    Case("refused_shape_mismatch", pair(bad.shape_mismatch_model, bad.shape_mismatch_guide), reals,
         refused="Model and guide shapes disagree", sites=("z",)),
    Case("refused_multi_scale", pair(enum.multiscale_model, empty_guide), reals, enum=True,
         refused="share a common poutine.scale", sites=("c", "x")),
    Case("refused_sequential_enum", pair(bad.sequential_model, empty_guide), reals, enum=True,
         refused="sequential enumeration", sites=("c",)),
    Case("refused_markov_history", pair(enum.short_history_model, empty_guide), reals, enum=True,
         refused="Enumeration dim conflict", sites=("s_2", "s_3")),
    Case("refused_diamond", pair(bad.diamond_model, empty_guide), lambda: (torch.zeros(N, 2, 2, dtype=torch.long),),
         enum=True, max_plate_nesting=3, refused="tree-structured plate nesting", sites=("d", "b", "c")),
    Case("refused_dim_collision", pair(bad.collide_model, bad.collide_guide), lambda: (torch.zeros(N, 2, 2),),
         max_plate_nesting=3, refused="collide at dim", sites=("plate_inner_2", "x")),
]
