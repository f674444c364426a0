package purge

// The headers by which a cache says, on its own clock, when it purged and
// when the copy it serves was fetched, and how many objects a purge
// removed. The shipped VCL sends them; any VCL may (see the README).
const (
	// ObjectsHeader, on a purge answer, is the number of objects the purge
	// removed (or expired, for a soft purge): vmod purge's purge.hard() and
	// purge.soft(), vmod xkey's purge() and softpurge() return it, and
	// vmod purge's manual names the header "purged".
	ObjectsHeader = "Purged"
	// PurgeTimeHeader, on a purge answer, is the instance's time when it
	// received the purge, in seconds since the epoch with a fraction
	// (1752000000.123456).
	PurgeTimeHeader = "Cdnpurge-Purge-Time"
	// FetchTimeHeader, on a response served from a cache object, is the
	// instance's time when the fetch that made that object began, in the
	// same form. Compared with PurgeTimeHeader on the same clock, it tells
	// a copy made before the purge (a fetch in flight survives a purge)
	// from one made after, whatever its Age says.
	FetchTimeHeader = "Cdnpurge-Fetch-Time"
)

// parseStamp reads seconds since the epoch, with an optional fraction
// (any number of digits; microseconds are kept), as microseconds. It
// returns 0 when v is not such a number or is not after 2001 (so 0 always
// means "not said").
func parseStamp[T string | []byte](v T) int64 {
	i := 0
	for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
		i++
	}
	j := len(v)
	for j > i && (v[j-1] == ' ' || v[j-1] == '\t') {
		j--
	}
	var sec, frac int64
	digits, fdigits := 0, 0
	k := i
	for ; k < j && v[k] >= '0' && v[k] <= '9'; k++ {
		if digits >= 12 {
			return 0
		}
		sec = sec*10 + int64(v[k]-'0')
		digits++
	}
	if digits == 0 {
		return 0
	}
	if k < j && v[k] == '.' {
		k++
		for ; k < j && v[k] >= '0' && v[k] <= '9'; k++ {
			if fdigits < 6 {
				frac = frac*10 + int64(v[k]-'0')
				fdigits++
			}
		}
	}
	if k != j || sec < 1e9 {
		return 0
	}
	for ; fdigits < 6; fdigits++ {
		frac *= 10
	}
	return sec*1_000_000 + frac
}
