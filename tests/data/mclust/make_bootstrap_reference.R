# Reference figures from R's mclust 6.0.0 for tests/test_bootstrap.py (the tests read the CSVs
# written here and never need R). Run from this folder: Rscript make_bootstrap_reference.R
# 1. mclustBootstrapLRT on faithful and iris (one model each, maxG = 3, 999 replicates): the
#    observed statistics and p-values, with the time it took.
# 2. MclustBootstrap of faithful's EEE, G = 3 fit: 999 nonparametric ("bs") and weighted
#    likelihood ("wlbs") replicates: the standard errors of the weights and means.
suppressMessages(library(mclust))
set.seed(20261205)
sets <- list(faithful = as.matrix(faithful), iris = as.matrix(iris[, 1:4]))
models <- c(faithful = "EEE", iris = "VEV")
rows <- list()
for (name in names(sets)) {
  lrt <- mclustBootstrapLRT(sets[[name]], modelName = models[[name]], nboot = 999, maxG = 3,
                            verbose = FALSE)
  rows[[name]] <- data.frame(data = name, model = models[[name]], G = lrt$G, obs = lrt$obs,
                             p_value = lrt$p.value)
}
write.csv(do.call(rbind, rows), "bootstrap_lrt.csv", row.names = FALSE)
fit <- Mclust(sets$faithful, G = 3, modelNames = "EEE", verbose = FALSE)
rows <- list()
for (type in c("bs", "wlbs")) {
  boot <- MclustBootstrap(fit, nboot = 999, type = type, verbose = FALSE)
  s <- summary(boot, what = "se")
  rows[[type]] <- data.frame(type = type, component = 1:3, loglik = fit$loglik,
                             weight = fit$parameters$pro,
                             mean_1 = fit$parameters$mean[1, ], mean_2 = fit$parameters$mean[2, ],
                             se_weight = s$pro, se_mean_1 = s$mean[1, ], se_mean_2 = s$mean[2, ])
}
write.csv(do.call(rbind, rows), "bootstrap_se.csv", row.names = FALSE)
