vcl 4.1;
# Style "pipely": the response header form and PURGE guard of
# thechangelog/pipely (changelog.com's Varnish CDN), written for cdnpurge's
# end-to-end tests; one static backend instead of its dynamic ones. Template
# fields: {{.Name}} (the region), {{.OriginHost}}, {{.OriginPort}},
# {{.TokenHeader}}, {{.Grace}} (beresp.grace, seconds).
#
# PURGE <path>  return (purge), 200 "Purged" (also when nothing was cached),
#               when the PURGE_TOKEN environment variable of varnishd is empty
#               or the {{.TokenHeader}} header equals it; otherwise 401
#               "Invalid PURGE token". As in pipely, PURGE_TOKEN must be SET
#               (varnish.Start always sets it, empty when there is no token):
#               when it is absent from the environment every PURGE is 401.
# BAN, tags     not handled: the built-in VCL pipes methods it does not know
#               (BAN, PURGEKEYS) to the origin, which answers them.
#
# Evidence: a cache-status header that is not RFC 9211 (not a list of caches,
# ttl and grace are VCL durations in seconds with three decimals):
#   hit    cache-status: region={{.Name}}; origin=HOST; ttl=99.998; grace=10.000; storage=memory; hit; hits=1
#   stale  cache-status: region={{.Name}}; origin=HOST; ttl=-0.500; grace=10.000; storage=memory; hit; stale; hits=2
#   miss   cache-status: region={{.Name}}; origin=HOST; ttl=100.000; grace=10.000; storage=memory; miss; hits=0
#   pass   cache-status: region={{.Name}}; origin=HOST; bypass
#   synth  cache-status: region={{.Name}}; synth   (purge answers and errors)
# hits counts the times the object was served from cache: hits=0 is a miss.
# HOST is the origin's host, {{.OriginHost}}.

import std;

backend origin {
    .host = "{{.OriginHost}}";
    .port = "{{.OriginPort}}";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        # No token configured: anyone may purge; otherwise the token is needed.
        if (std.getenv("PURGE_TOKEN") == "" ||
            req.http.{{.TokenHeader}} == std.getenv("PURGE_TOKEN")) {
            return (purge);
        }
        return (synth(401, "Invalid PURGE token"));
    }
}

sub vcl_pass {
    set req.http.x-bypass = "true";
}

sub vcl_backend_response {
    set beresp.grace = {{.Grace}}s;
}

sub vcl_deliver {
    set resp.http.cache-status = "region={{.Name}}; origin={{.OriginHost}}";
    if (req.http.x-bypass == "true") {
        set resp.http.cache-status = resp.http.cache-status + "; bypass";
        return (deliver);
    }
    set resp.http.cache-status = resp.http.cache-status +
        "; ttl=" + obj.ttl + "; grace=" + obj.grace + "; storage=memory";
    if (obj.hits > 0) {
        set resp.http.cache-status = resp.http.cache-status + "; hit";
    } else {
        set resp.http.cache-status = resp.http.cache-status + "; miss";
    }
    if (obj.hits > 0 && obj.ttl < 0s) {
        set resp.http.cache-status = resp.http.cache-status + "; stale";
    }
    set resp.http.cache-status = resp.http.cache-status + "; hits=" + obj.hits;
}

sub vcl_synth {
    set resp.http.cache-status = "region={{.Name}}; synth";
}
