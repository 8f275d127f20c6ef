# Reference figures from R's mclust for tests/test_mclust.py (the tests read the CSVs written
# here and never need R). Run from this folder: Rscript make_reference.R
# For faithful and iris (its four measurements): mclust's default start (hierarchical
# clustering, VVV criterion, on the SVD-scaled data, as Mclust does) cut at G = 1..6, and for
# every model and G, EM from that start to a tight tolerance: its log-likelihood and BIC,
# without and with mclust's default conjugate prior; then Mclust's own BIC table.
suppressMessages(library(mclust))
models <- c("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE",
            "EEV", "VEV", "EVV", "VVV")
tight <- emControl(tol = c(1e-11, 1e-11), itmax = c(100000L, 100000L))
sets <- list(faithful = as.matrix(faithful), iris = as.matrix(iris[, 1:4]))
for (name in names(sets)) {
  X <- sets[[name]]
  tree <- hc(X, modelName = "VVV", use = "SVD")
  starts <- sapply(1:6, function(G) if (G == 1) rep(1L, nrow(X)) else hclass(tree, G))
  colnames(starts) <- paste0("G", 1:6)
  write.csv(starts, sprintf("%s_start.csv", name), row.names = FALSE)
  rows <- list()
  for (G in 1:6) {
    z <- unmap(starts[, G], groups = 1:G)
    for (model in models) {
      for (with_prior in c(FALSE, TRUE)) {
        prior <- if (with_prior) priorControl() else NULL
        fit <- tryCatch(me(X, modelName = model, z = z, prior = prior, control = tight,
                           warn = FALSE), error = function(e) NULL)
        loglik <- if (is.null(fit) || is.null(fit$loglik)) NA else fit$loglik
        bic <- if (is.na(loglik)) NA else
          2 * loglik - nMclustParams(model, ncol(X), G) * log(nrow(X))
        # mclust's ICL (its icl()): BIC + 2 sum_i log max_k z_ik, from the fit's z
        icl <- if (is.na(loglik)) NA else bic + 2 * sum(log(apply(fit$z, 1, max)))
        rows[[length(rows) + 1]] <- data.frame(model = model, G = G, prior = with_prior,
                                               loglik = loglik, bic = bic, icl = icl)
      }
    }
  }
  write.csv(do.call(rbind, rows), sprintf("%s_em.csv", name), row.names = FALSE)
  table <- mclustBIC(X, G = 1:6)
  bic <- as.data.frame(as.table(table[, , drop = FALSE]))
  names(bic) <- c("G", "model", "bic")
  write.csv(bic, sprintf("%s_mclustBIC.csv", name), row.names = FALSE)
  best <- Mclust(X, G = 1:6)
  cat(name, ": Mclust best", best$modelName, best$G, "BIC", best$bic, "\n")
}
cat("mclust", as.character(packageVersion("mclust")), "\n")
