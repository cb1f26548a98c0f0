#!/usr/bin/env python3
"""Tests of scripts/check-sizes on small fixtures: how it finds function bodies in clang-formatted
C++ (literals, comments, lambdas, initializer lists, class bodies), the "one piece:" marker, the
file limit, the generated-data exemption and the allowlist. Usage: check_sizes_test.py CHECKER"""

import os
import subprocess
import sys
import tempfile
import textwrap
import unittest
from importlib.machinery import SourceFileLoader

CHECKER = sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "scripts", "check-sizes")
cs = SourceFileLoader("check_sizes", CHECKER).load_module()


def body(n, indent="  "):
    return "".join("%sx += %d;\n" % (indent, i) for i in range(n))


def fns(text):
    return [(name, last - first + 1) for name, first, last in cs.find_functions(text)]


class FindFunctions(unittest.TestCase):
    def test_free_function_counts_signature_to_closing_brace(self):
        src = "int f(int a,\n      int b) {\n" + body(5) + "}\n"
        self.assertEqual(fns(src), [("f", 8)])

    def test_braces_in_literals_and_comments_are_ignored(self):
        src = textwrap.dedent('''\
            // a comment with { and }
            void g() {
              const char* s = "}}}{";
              char c = '}';
              auto r = R"x(}
            } { )x";
              int big = 1'000'000;  /* } */
            }
            ''')
        self.assertEqual(fns(src), [("g", 7)])

    def test_control_blocks_namespaces_and_classes_are_not_functions(self):
        src = textwrap.dedent('''\
            namespace a {
            struct S {
              int m() const { return 1; }
              void n() {
                if (x) {
                  for (;;) {
                  }
                } else {
                }
                switch (y) {
                  case 1: {
                  }
                }
                try {
                } catch (const std::exception& e) {
                }
              }
            };
            }  // namespace a
            ''')
        self.assertEqual(fns(src), [("m", 1), ("n", 14)])

    def test_braced_initializers_stay_in_their_function(self):
        src = textwrap.dedent('''\
            std::vector<int> v = {1, 2};
            void h() {
              std::map<int, int> m = {{1, 2}, {3, 4}};
              call(a, {1, 2}, Foo{3});
              log("x", {{"K", v}});
              return;
            }
            ''')
        self.assertEqual(fns(src), [("h", 6)])

    def test_constructor_initializer_list_with_braces(self):
        src = textwrap.dedent('''\
            Foo::Foo(int a)
                : a_(a),
                  b_{a, 2},
                  c_(std::make_shared<int>(a)) {
              go();
            }
            ''')
        self.assertEqual(fns(src), [("Foo::Foo", 6)])

    def test_qualifiers_and_trailing_return(self):
        src = "auto A::f() const noexcept -> int {\n  return 1;\n}\nvoid B::g() override {\n}\n"
        self.assertEqual(fns(src), [("A::f", 3), ("B::g", 2)])

    def test_lambdas_are_functions_of_their_own(self):
        src = textwrap.dedent('''\
            void outer() {
              auto f = [&](int a) {
                return a;
              };
              run([this] { go(); });
              timer.async_wait([weak](const error_code& ec) {
                use(ec);
              });
            }
            ''')
        self.assertEqual(sorted(fns(src)), sorted([
            ("outer", 9), ("lambda in outer", 3), ("lambda in outer", 1), ("lambda in outer", 3)]))

    def test_preprocessor_lines_are_ignored(self):
        src = "#define X { \\\n  }\nvoid p() {\n}\n"
        self.assertEqual(fns(src), [("p", 2)])


class Limits(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.root = self.dir.name
        os.makedirs(os.path.join(self.root, "daemon", "stage"))

    def tearDown(self):
        self.dir.cleanup()

    def write(self, rel, text):
        path = os.path.join(self.root, rel)
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_checker(self, *args):
        r = subprocess.run([sys.executable, CHECKER, "--root", self.root, "--no-allowlist"] +
                           list(args), capture_output=True, text=True)
        return r.returncode, r.stdout

    def test_long_function_fails_and_names_it(self):
        self.write("daemon/stage/a.cpp", "void big() {\n" + body(119) + "}\n")  # 121 lines
        rc, out = self.run_checker()
        self.assertEqual(rc, 1, out)
        self.assertIn("daemon/stage/a.cpp: function big at line 1: 121 lines", out)

    def test_function_of_exactly_the_limit_passes(self):
        self.write("daemon/stage/a.cpp", "void ok() {\n" + body(118) + "}\n")  # 120 lines
        self.assertEqual(self.run_checker()[0], 0)

    def test_one_piece_comment_above_excuses_a_long_function(self):
        self.write("daemon/stage/a.cpp",
                   "// Why this exists.\n//\n// one piece: a dispatch switch over every opcode.\n"
                   "// More text.\n// Even more.\nvoid big() {\n" + body(150) + "}\n")
        self.assertEqual(self.run_checker()[0], 0)

    def test_marker_must_be_right_above_the_function(self):
        self.write("daemon/stage/a.cpp",
                   "// one piece: says it about something else\nint x;\n\nint y;\n\n"
                   "void big() {\n" + body(150) + "}\n")
        self.assertEqual(self.run_checker()[0], 1)

    def test_file_over_the_limit_fails_unless_generated_data(self):
        self.write("daemon/stage/long.cpp", "int x;\n" * 701)
        self.write("daemon/stage/table_data.cpp", "int x;\n" * 5000)
        self.write("daemon/stage/short.hpp", "int x;\n" * 700)
        rc, out = self.run_checker()
        self.assertEqual(rc, 1)
        self.assertIn("daemon/stage/long.cpp: file 701 lines (limit 700)", out)
        self.assertNotIn("table_data", out)
        self.assertNotIn("short.hpp", out)

    def test_allowlist_excuses_only_its_entries_and_reports_stale_ones(self):
        self.write("daemon/stage/long.cpp", "void big() {\n" + body(200) + "}\n" + "int x;\n" * 600)
        saved = cs.ALLOWLIST
        try:
            cs.ALLOWLIST = [("daemon/stage/long.cpp", None), ("daemon/stage/long.cpp", "big"),
                            ("daemon/stage/gone.cpp", None)]
            out = []
            import io
            import contextlib
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                rc = cs.main(["--root", self.root])
            self.assertEqual(rc, 0, buf.getvalue())
            self.assertIn("note: allowlist entry daemon/stage/gone.cpp matches nothing",
                          buf.getvalue())
            cs.ALLOWLIST = [("daemon/stage/long.cpp", None)]  # the size only, not the function
            with contextlib.redirect_stdout(io.StringIO()):
                self.assertEqual(cs.main(["--root", self.root]), 1)
        finally:
            cs.ALLOWLIST = saved


if __name__ == "__main__":
    unittest.main(verbosity=2)
