// Runs an EDID through edid-decode (an independent parser, Debian package edid-decode) for tests.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace vscanout::test {

inline bool have_edid_decode() { return std::system("command -v edid-decode >/dev/null 2>&1") == 0; }

// edid-decode's report with the conformity checks (-c) and the preferred timing (-p).
inline std::string edid_decode(const std::vector<uint8_t> &edid) {
	char path[] = "/tmp/vscanout-edid.XXXXXX";
	int fd = ::mkstemp(path);
	if (fd < 0) return "mkstemp failed";
	const bool ok = ::write(fd, edid.data(), edid.size()) == static_cast<ssize_t>(edid.size());
	::close(fd);
	std::string out;
	if (ok) {
		const std::string cmd = std::string("edid-decode -c -p -s ") + path + " 2>&1";
		if (FILE *p = ::popen(cmd.c_str(), "r")) {
			char buf[4096];
			size_t n;
			while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
			::pclose(p);
		}
	}
	::unlink(path);
	return out;
}

// The "WxH" edid-decode names as the preferred timing, or "".
inline std::string edid_decode_preferred(const std::string &report) {
	const std::string marker = "Preferred Video Timing";
	size_t at = report.find(marker);
	if (at == std::string::npos) return "";
	at = report.find("DTD", at);
	if (at == std::string::npos) return "";
	at = report.find(':', at);
	if (at == std::string::npos) return "";
	at = report.find_first_not_of(' ', at + 1);
	const size_t end = report.find(' ', at);
	return report.substr(at, end - at);
}

} // namespace vscanout::test
