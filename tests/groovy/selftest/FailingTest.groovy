// Deliberately failing cases: the harness must report them and exit non-zero
// (tests/test_groovy_steps.py checks that). Not part of the real suite.

test('a passing case') {
  assert 1 + 1 == 2
}

test('a failing assertion') {
  def h = new Harness()
  h.exitWith(['recover': 11])
  assert h.shScripts() == ['expected-by-the-self-test']
}

test('an unexpected step error') {
  def h = new Harness()
  h.binding.getVariable('error').call('boom from the self-test')
}
